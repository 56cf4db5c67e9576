#include "io/image.h"

// No STB_IMAGE_IMPLEMENTATION here: Debian's libstb (linked through pkg-config "stb")
// already compiles stb_image and stb_image_write, and a second copy would clash with it.
#include <stb/stb_image.h>

#include <cstdint>
#include <memory>

#include "core/error.h"
#include "core/files.h"

namespace normlab::io {

torch::Tensor read_image(const std::string& path) {
  // Reading the bytes ourselves gives a file error (missing, unreadable) its own message;
  // stb then only reports decoding problems.
  const std::vector<uint8_t> bytes = read_file_bytes(path);
  require(!bytes.empty(), path, "the image file is empty");
  require(bytes.size() <= static_cast<size_t>(INT32_MAX), path, "the image file is too large");
  // stb decodes a truncated JPEG without complaint (the missing rows come out grey): a JPEG
  // must end with its end-of-image marker (FF D9), give or take trailing padding.
  if (bytes.size() >= 2 && bytes[0] == 0xFF && bytes[1] == 0xD8) {
    bool eoi = false;
    const size_t from = bytes.size() > 4096 ? bytes.size() - 4096 : 1;
    for (size_t i = bytes.size() - 1; i > from && !eoi; --i) {
      eoi = bytes[i - 1] == 0xFF && bytes[i] == 0xD9;
    }
    require(eoi, path, "truncated JPEG: no end-of-image marker",
            "the file was cut short (an interrupted copy or download); replace it");
  }
  int w = 0, h = 0, channels_in_file = 0;
  // desired_channels = 3: stb converts grayscale (+alpha) and RGBA to RGB.
  std::unique_ptr<stbi_uc, decltype(&stbi_image_free)> pixels(
      stbi_load_from_memory(bytes.data(), static_cast<int>(bytes.size()), &w, &h, &channels_in_file,
                            3),
      stbi_image_free);
  if (pixels == nullptr) {
    const char* reason = stbi_failure_reason();
    throw Error(path,
                std::string("cannot decode image: ") + (reason != nullptr ? reason : "unknown"),
                "PNG, JPEG (baseline/progressive), BMP, GIF, TGA, PSD, HDR, PIC and PNM are read");
  }
  // stb returns (H, W, 3) interleaved; copy out before the buffer is freed.
  auto hwc = torch::from_blob(pixels.get(), {h, w, 3}, torch::kUInt8);
  return hwc.permute({2, 0, 1}).contiguous();  // (3, H, W)
}

}  // namespace normlab::io
