// The safetensors format (https://github.com/huggingface/safetensors, "Format"):
//   8 bytes   N, little-endian u64: the header size
//   N bytes   JSON {name: {"dtype", "shape", "data_offsets": [begin, end]}, ...,
//                   "__metadata__": {str: str}} (optional metadata), space-padded
//   rest      the byte buffer; offsets are relative to its start, little-endian elements.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "io/state_dict.h"

namespace normlab::io {

// Parses a whole safetensors file. Strict: the header must fit in the file and be a JSON
// object without duplicate names; every tensor's dtype, shape and offsets must agree; the
// tensors must tile the buffer exactly (no gaps, overlaps or trailing bytes). Errors name
// `name` (the path) and the tensor.
StateDict parse_safetensors(const std::vector<uint8_t>& bytes, const std::string& name);

// The bytes of a safetensors file holding `dict` (tensors written in order, contiguous).
// Throws Error for duplicate names or a dtype safetensors cannot hold.
std::vector<uint8_t> encode_safetensors(const StateDict& dict);

// "F32", "BF16", ... (the safetensors spelling); throws Error for other dtypes.
std::string safetensors_dtype(torch::ScalarType dtype);

}  // namespace normlab::io
