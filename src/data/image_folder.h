// Image-folder datasets (data.dataset = "folder"; S2's Oxford-IIIT Pet -> Imagewoof):
//
//   data.path/train/<class>/*.png|jpg|...   the training split ("train" = true)
//   data.path/val/<class>/...               the official evaluation split ("train" = false)
//   or data.path/<class>/...                one split only: carve validation with
//                                           data.val_fraction and set data.test = false
//
// A class is a sub-directory (sorted by name; its name is the class name); images are
// decoded once (stb_image: PNG, JPEG, BMP, GIF, TGA, PSD, HDR, PIC, PNM), converted to RGB and
// resized to data.folder.size x data.folder.size with PIL's antialiased bilinear filter
// (squashed, not cropped), and kept as uint8 like CIFAR. The decoded set is cached under
// normlab's cache directory (images/<key>.safetensors), the key being the resize and every
// file's path, size and modification time: a changed, added or removed file decodes again.
// Unreadable or truncated images, empty classes, a split without classes and class sets that
// differ between train/ and val/ are Errors naming the file or directory.
#pragma once

#include <string>
#include <vector>

#include "data/dataset.h"

namespace normlab::data {

struct ImageFolderOptions {
  std::string root;      // data.path
  bool train = true;     // train/ (or the root itself) vs val/
  int64_t size = 64;     // output height = width
  bool progress = true;  // a progress line while decoding
  std::string cache;     // cache directory; "" = io::cache_dir() + "/images"
};

Dataset load_image_folder(const ImageFolderOptions& options);

// The file extensions read as images (lower case, with the dot).
const std::vector<std::string>& image_extensions();

}  // namespace normlab::data
