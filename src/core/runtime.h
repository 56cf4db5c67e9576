// Process-wide runtime settings that must be applied in exactly one place: thread counts,
// seeds and device selection. Each value applied is returned so the caller can record it.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>

namespace normlab {

// Sets LibTorch's intra-op threads. 0 means "all cores" (LibTorch here defaults to 1).
// Returns the count in effect.
int apply_threads(int requested);

// Seeds LibTorch's global generators (CPU, and CUDA when present). Same seed + same thread
// count gives bit-identical results on CPU.
void apply_seed(uint64_t seed);

// A private CPU generator, for data order and augmentation draws that must not depend on
// how many random numbers the model consumed.
torch::Generator make_generator(uint64_t seed);

// Parses "cpu", "cuda", "cuda:1" or "auto" (CUDA when available, else CPU).
torch::Device parse_device(const std::string& name);

}  // namespace normlab
