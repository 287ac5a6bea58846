# Makefile - build and install shmsock without Bazel (GNU make, gcc or clang).
#
#   make                                  # build/libshmsock.a, build/libshmsock.so.X.Y.Z,
#                                         # build/libshmsock-preload.so, the tools
#   make install PREFIX=/usr/local        # what goes where:
#       $(BINDIR)         shmsock-ss, shmsock-run
#       $(INCLUDEDIR)     shmsock.h
#       $(LIBDIR)         libshmsock.a, libshmsock.so.X.Y.Z (+ .so.X, .so links),
#                         libshmsock-preload.so (LD_PRELOAD library, found by shmsock-run in
#                         its ../lib: keep LIBDIR = PREFIX/lib and BINDIR = PREFIX/bin for that)
#       $(PKGCONFIGDIR)   shmsock.pc
#       $(MANDIR)/man1, man3, man7   the man pages
#   make install PREFIX=/usr DESTDIR=pkg  # staged install (packagers)
#   make uninstall PREFIX=...             # remove what `make install` put there
#   make clean
#
# One source of truth, shared with Bazel (tools/check_sources.sh fails when they drift):
#   - sources: api/*.c and impl/*.c, which BUILD splits into layered targets (//:shmsock,
#     //impl:engine, //impl:wire, ...; see impl/BUILD); here they make one library;
#   - warning flags: read from SHMSOCK_COPTS in tools/copts.bzl;
#   - version: SHMSOCK_VERSION_MAJOR/MINOR/PATCH in include/shmsock.h.
# The shared library exports only the public shm_* calls (build/shmsock.map).
# libshmsock-preload.so (for shmsock-run) is the library's objects plus api/preload/*.c (as
# Bazel's //api/preload:libshmsock-preload.so links //:shmsock).

PREFIX     ?= /usr/local
DESTDIR    ?=
LIBDIR     ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
MANDIR     ?= $(PREFIX)/share/man
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
BINDIR     ?= $(PREFIX)/bin
BUILDDIR   ?= build

CC      ?= cc
AR      ?= ar
INSTALL ?= install
CFLAGS  ?= -O2 -g
LDFLAGS ?=

# Sources: what //:shmsock and the impl/ targets it depends on hold in BUILD, together
# (api/*.c, api/*.h, impl/*.c, impl/*.h, include/shmsock.h).
SRCS := $(sort $(wildcard api/*.c impl/*.c))
HDRS := $(sort $(wildcard api/*.h impl/*.h)) include/shmsock.h
OBJS := $(patsubst %.c,$(BUILDDIR)/obj/%.o,$(SRCS))

# The LD_PRELOAD library: the library's objects and the interposition (api/preload/).
PRELOAD_SRCS := $(sort $(wildcard api/preload/*.c))
PRELOAD_HDRS := $(sort $(wildcard api/preload/*.h))
PRELOAD_OBJS := $(OBJS) $(patsubst %.c,$(BUILDDIR)/obj/%.o,$(PRELOAD_SRCS))
PRELOAD      := $(BUILDDIR)/libshmsock-preload.so

# Warning flags and -std: the list SHMSOCK_COPTS in tools/copts.bzl, one quoted flag a line.
COPTS := $(shell sed -n 's/^ *"\(-[^"]*\)",.*$$/\1/p' tools/copts.bzl)

# Version: from the header.
version_part = $(shell sed -n 's/^.define SHMSOCK_VERSION_$(1) \([0-9][0-9]*\).*/\1/p' include/shmsock.h)
MAJOR   := $(call version_part,MAJOR)
MINOR   := $(call version_part,MINOR)
PATCH   := $(call version_part,PATCH)
VERSION := $(MAJOR).$(MINOR).$(PATCH)

SONAME   := libshmsock.so.$(MAJOR)
REALNAME := libshmsock.so.$(VERSION)
STATIC   := $(BUILDDIR)/libshmsock.a
SHARED   := $(BUILDDIR)/$(REALNAME)

MAN1 := $(sort $(wildcard man/man1/*.1))
MAN3 := $(sort $(wildcard man/man3/*.3))
MAN7 := $(sort $(wildcard man/man7/*.7))

ALL_CFLAGS := $(COPTS) -Iinclude -fPIC -pthread $(CFLAGS)

.PHONY: all static shared preload install uninstall clean print-sources print-copts print-version
.DELETE_ON_ERROR:

all: static shared preload $(BUILDDIR)/shmsock.pc $(BUILDDIR)/shmsock-ss $(BUILDDIR)/shmsock-run

static: $(STATIC)
shared: $(SHARED) $(BUILDDIR)/$(SONAME) $(BUILDDIR)/libshmsock.so
preload: $(PRELOAD)

ifeq ($(MAJOR),)
$(error cannot read SHMSOCK_VERSION_MAJOR from include/shmsock.h)
endif
ifeq ($(COPTS),)
$(error cannot read SHMSOCK_COPTS from tools/copts.bzl)
endif

# One set of position-independent objects serves both libraries. Every object depends on
# every header: the library is small, and a stale object is worse than a rebuild.
$(BUILDDIR)/obj/%.o: %.c $(HDRS) tools/copts.bzl
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(STATIC): $(OBJS)
	@rm -f $@
	$(AR) rcs $@ $^

# Export the public calls only; everything internal is shmsock_* and stays local.
$(BUILDDIR)/shmsock.map:
	@mkdir -p $(@D)
	printf '{\n  global: shm_*;\n  local: *;\n};\n' > $@

$(SHARED): $(OBJS) $(BUILDDIR)/shmsock.map
	$(CC) -shared -Wl,-soname,$(SONAME) -Wl,--version-script,$(BUILDDIR)/shmsock.map \
	    $(LDFLAGS) -o $@ $(OBJS) -pthread

# The inspection tool reads region headers: it needs the wire format only (impl/wire.h,
# impl/wire_check.h, whose functions it takes from the static library).
$(BUILDDIR)/shmsock-ss: tools/shmsock_ss.c impl/wire.h impl/wire_check.h $(STATIC)
	$(CC) $(ALL_CFLAGS) -I. -o $@ tools/shmsock_ss.c $(STATIC) $(LDFLAGS) -pthread

# The preload library exports what it interposes (socket, connect, ...) and shm_*; its
# version script (api/preload/hidden.map) keeps the internal shmsock_* names inside;
# -z defs: a symbol missing at link time would otherwise fail only inside the program.
# -iquote .: "api/fd_table.h" resolves from the root, as Bazel's include path has it.
$(BUILDDIR)/obj/api/preload/%.o: api/preload/%.c $(HDRS) $(PRELOAD_HDRS) tools/copts.bzl
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -iquote . -c $< -o $@

$(PRELOAD): $(PRELOAD_OBJS) api/preload/hidden.map
	$(CC) -shared -Wl,-z,defs -Wl,--version-script,api/preload/hidden.map $(LDFLAGS) -o $@ \
	    $(PRELOAD_OBJS) -ldl -pthread

# The launcher needs no library: the version (include/shmsock.h) and the block size limits
# (impl/wire.h) are macros. It finds libshmsock-preload.so beside itself here.
$(BUILDDIR)/shmsock-run: tools/shmsock_run.c include/shmsock.h impl/wire.h tools/copts.bzl
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -I. -o $@ tools/shmsock_run.c $(LDFLAGS)

$(BUILDDIR)/$(SONAME) $(BUILDDIR)/libshmsock.so: $(SHARED)
	ln -sf $(REALNAME) $@

# The prefix is written as given at build time; `make install PREFIX=...` regenerates it.
# libdir and includedir are written relative to ${prefix} when they are under it.
PC_LIBDIR     = $(patsubst $(PREFIX)/%,$${prefix}/%,$(LIBDIR))
PC_INCLUDEDIR = $(patsubst $(PREFIX)/%,$${prefix}/%,$(INCLUDEDIR))
$(BUILDDIR)/shmsock.pc: shmsock.pc.in include/shmsock.h FORCE
	@mkdir -p $(@D)
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(PC_LIBDIR)|g' \
	    -e 's|@INCLUDEDIR@|$(PC_INCLUDEDIR)|g' -e 's|@VERSION@|$(VERSION)|g' $< > $@.tmp
	@if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv $@.tmp $@; fi

.PHONY: FORCE
FORCE:

install: all
	$(INSTALL) -d $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(PKGCONFIGDIR) \
	    $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man3 $(DESTDIR)$(MANDIR)/man7 \
	    $(DESTDIR)$(BINDIR)
	$(INSTALL) -m 755 $(BUILDDIR)/shmsock-ss $(DESTDIR)$(BINDIR)/shmsock-ss
	$(INSTALL) -m 755 $(BUILDDIR)/shmsock-run $(DESTDIR)$(BINDIR)/shmsock-run
	$(INSTALL) -m 755 $(PRELOAD) $(DESTDIR)$(LIBDIR)/libshmsock-preload.so
	$(INSTALL) -m 644 include/shmsock.h $(DESTDIR)$(INCLUDEDIR)/shmsock.h
	$(INSTALL) -m 644 $(STATIC) $(DESTDIR)$(LIBDIR)/libshmsock.a
	$(INSTALL) -m 755 $(SHARED) $(DESTDIR)$(LIBDIR)/$(REALNAME)
	ln -sf $(REALNAME) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libshmsock.so
	$(INSTALL) -m 644 $(BUILDDIR)/shmsock.pc $(DESTDIR)$(PKGCONFIGDIR)/shmsock.pc
	@# Pages that document several calls are symlinks (shm_sendto.3 -> shm_send.3): keep them so.
	for page in $(MAN1) $(MAN3) $(MAN7); do \
	    dir=$(DESTDIR)$(MANDIR)/$$(basename $$(dirname $$page)); \
	    if [ -L $$page ]; then ln -sf $$(readlink $$page) $$dir/$$(basename $$page); \
	    else $(INSTALL) -m 644 $$page $$dir; fi; \
	done

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/shmsock-ss $(DESTDIR)$(BINDIR)/shmsock-run \
	    $(DESTDIR)$(LIBDIR)/libshmsock-preload.so
	rm -f $(DESTDIR)$(INCLUDEDIR)/shmsock.h $(DESTDIR)$(LIBDIR)/libshmsock.a \
	    $(DESTDIR)$(LIBDIR)/libshmsock.so $(DESTDIR)$(LIBDIR)/$(SONAME) \
	    $(DESTDIR)$(LIBDIR)/$(REALNAME) $(DESTDIR)$(PKGCONFIGDIR)/shmsock.pc \
	    $(addprefix $(DESTDIR)$(MANDIR)/man1/,$(notdir $(MAN1))) \
	    $(addprefix $(DESTDIR)$(MANDIR)/man3/,$(notdir $(MAN3))) \
	    $(addprefix $(DESTDIR)$(MANDIR)/man7/,$(notdir $(MAN7)))

clean:
	rm -rf $(BUILDDIR)

# For tools/check_sources.sh and the curious.
print-sources:
	@printf '%s\n' $(SRCS) $(HDRS)
print-copts:
	@printf '%s\n' $(COPTS)
print-version:
	@echo $(VERSION)
