# Builds build/Release/rfid_moe_native.node: the native linear-algebra engine over OpenBLAS
# (CBLAS) and LAPACKE. Run by scripts/install-native.mjs at `npm install`; optional.
{
  "targets": [
    {
      "target_name": "rfid_moe_native",
      "sources": [
        "native/addon.cc",
        "native/attention.cc",
        "native/args.cc",
        "native/blas_ops.cc",
        "native/bf16_gemm.cc",
        "native/mxfp4_gemm.cc",
        "native/fp8_gemm.cc",
        "native/decoded_gemm.cc",
        "native/bf16_dot.cc",
        "native/amx_bf16.cc",
        "native/small_gemm.cc",
        "native/thread_pool.cc",
        "native/moe_experts.cc",
        "native/eig_sym.cc",
        "native/eig_sym_top.cc",
        "native/factorizations.cc",
        "native/randomized_svd.cc",
        "native/softmax.cc",
        "native/pointwise.cc",
        "native/rows.cc",
        "native/huge_pages.cc",
        "native/file_map.cc",
        "native/transpose.cc"
      ],
      "dependencies": [
        "<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except_all"
      ],
      "defines": ["NAPI_VERSION=8"],
      # -O3 vectorises the forward-pass loops; -fno-trapping-math lets the compiler turn their
      # float selects into blends (nothing here reads floating-point exception flags).
      # -Wno-psabi: GCC notes that a function returning a wide vector outside an AVX target has
      # another ABI than inside one; those helpers are inlined into their callers, never called
      # across that line, and the note is noise in every user's install.
      "cflags_cc": ["-O3", "-fno-trapping-math", "-std=c++17", "-Wno-psabi"],
      "conditions": [
        ["OS=='linux'", {
          # Fedora/RHEL keep the OpenBLAS headers in a subdirectory.
          "include_dirs": ["/usr/include/openblas"],
          "libraries": ["-lopenblas", "-llapacke"]
        }],
        ["OS=='mac'", {
          # Homebrew's openblas is keg-only (it ships LAPACKE too).
          "include_dirs": ["/opt/homebrew/opt/openblas/include", "/usr/local/opt/openblas/include"],
          "libraries": [
            "-L/opt/homebrew/opt/openblas/lib", "-L/usr/local/opt/openblas/lib",
            "-Wl,-rpath,/opt/homebrew/opt/openblas/lib", "-Wl,-rpath,/usr/local/opt/openblas/lib",
            "-lopenblas"
          ],
          "xcode_settings": {
            "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
            "GCC_OPTIMIZATION_LEVEL": "3",
            "OTHER_CPLUSPLUSFLAGS": ["-fno-trapping-math"],
            "MACOSX_DEPLOYMENT_TARGET": "11.0"
          }
        }]
      ]
    }
  ]
}
