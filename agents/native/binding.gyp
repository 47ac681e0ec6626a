{
  "targets": [
    {
      "target_name": "sigil_native",
      "sources": ["peer-credentials.c"],
      "cflags": ["-std=c11", "-Wall", "-Wextra", "-O2"]
    }
  ]
}
