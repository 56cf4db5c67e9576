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

// Makes the C allocator keep freed memory for reuse instead of returning it to the kernel.
// glibc serves blocks above 32 MB (every activation of a 224x224 batch) with a fresh mmap
// each time, so each step page-faults and zeroes them again: measured here, a MobileNetV2
// trunk forward at batch 64 ran at 28 img/s with 2.5 s of system time per 1.8 s of user
// time, and at 69 img/s once freed memory stayed in the heap. No-op on other C libraries.
void keep_freed_memory();

// LibTorch's OpenMP threads and OpenBLAS's own pool share the cores; with libgomp's default
// (active) wait policy the idle pool spins while the other works, which made a full-batch MLP
// study 4.3x and the quickstart 1.35x slower on 2 cores (bench/README.md). libgomp reads
// OMP_WAIT_POLICY once, when it is loaded (before main), so when the variable is unset this
// sets it to PASSIVE and re-executes the program (Linux; elsewhere, or if exec fails, it
// returns and the run goes on with the active policy). Call first thing in main.
void sleep_idle_openmp_threads(char** argv);

// Returns whole free pages of the C heap to the kernel (glibc's malloc_trim): called after
// phases with a higher peak than the steady state (recalibration, cache building), which
// keep_freed_memory would otherwise hold for the rest of the process. No-op elsewhere.
void release_free_memory();

// A small host tensor (batch indices, augmentation draws) copied to `device` without making the
// host wait: a blocking copy to CUDA synchronises the stream, so one per training step would
// let the GPU run dry every step. From pageable memory the driver stages the source before
// the call returns, so the source may go away at once. On the CPU it is `t.to(device)`.
torch::Tensor to_device(const torch::Tensor& t, torch::Device device);

// Parses "cpu", "cuda", "cuda:1" or "auto" (CUDA when available, else CPU).
torch::Device parse_device(const std::string& name);

}  // namespace normlab
