{
  "targets": [
    {
      "target_name": "nvmf_rbd",
      "sources": ["nvmf_rbd.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-std=gnu11", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "libraries": ["-lrbd", "-lrados", "-lpthread"]
    }
  ]
}
