// The x86 intrinsics, included through here so that GCC 12 builds without a screen of false
// warnings: its AVX-512 headers build many intrinsics on _mm512_undefined_*(), whose `__Y` it then
// reports "may be used uninitialized" wherever one is inlined (GCC bug 105593, fixed in GCC 13).
// The warning's location is inside the header, so silencing it around the include silences only
// those, not any in this project's code. Include this before anything else that includes
// <immintrin.h> (the first inclusion decides).
#pragma once

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#else
#include <immintrin.h>
#endif
