"""Compiler flags for all shmsock C targets: the ONE place to change them.

Every BUILD file does:
    load("@rules_cc//cc:defs.bzl", "cc_library", "cc_test")
    load("//tools:copts.bzl", "SHMSOCK_COPTS")
    cc_library(name = ..., srcs = ..., copts = SHMSOCK_COPTS)
-Werror is deliberately not here: CI adds it with --config=werror (see .bazelrc).
"""

SHMSOCK_COPTS = [
    "-std=gnu11",  # C11 with GNU extensions
    "-Wall",
    "-Wextra",
    "-Wshadow",
    "-Wstrict-prototypes",
    "-Wmissing-prototypes",
    "-Wold-style-definition",
    "-Wpointer-arith",
    "-Wformat=2",
    "-Wundef",
    "-Wwrite-strings",
    "-Wvla",
]
