// Seed mixing for the data streams (batch order, synthetic data).
#pragma once

#include <cstdint>

namespace normlab {

// SplitMix64 finaliser (Steele, Lea & Flood 2014, "Fast splittable pseudorandom number
// generators"): nearby inputs give unrelated outputs, which matters because the CPU
// generator keeps only 32 bits of its seed (mt19937).
inline uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace normlab
