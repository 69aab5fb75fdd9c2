# Remora build: one static library of every module, linked into the programs and the tests.
#   make            build/remora, build/remoractl
#   make test       deps, format check, unit tests (plain and ASan+UBSan), fuzz replay, e2e tests
#   make demo       simulated cluster demo (root)
#   make fuzz       libFuzzer runs with clang
#   make bench      benchmarks

.DEFAULT_GOAL := all
BUILD    ?= build
SAN      ?= 0
CC       ?= gcc
PROTOC_C ?= protoc-c
WKT_INC  ?= /usr/include

# Library flags come from pkg-config (scripts/pkgflags.sh), asked once, on first use in a recipe:
# never while this file is parsed, which on a fresh machine is before `deps` has installed
# pkg-config and the -dev packages. A missing package stops the build with its name.
PKGS     := libuv libprotobuf-c yaml-0.1 jansson mbedtls libnghttp2
pkg_flags = $(shell CC=$(CC) scripts/pkgflags.sh $1 $2)$(if $(filter 0,$(.SHELLSTATUS)),,$(error             cannot build without the packages named above))
PKG_CFLAGS = $(eval PKG_CFLAGS := $(call pkg_flags,--cflags,$(PKGS)))$(PKG_CFLAGS)
PKG_LIBS   = $(eval PKG_LIBS := $(call pkg_flags,--libs,$(PKGS)))$(PKG_LIBS)
CMOCKA_LIBS = $(eval CMOCKA_LIBS := $(call pkg_flags,--libs,cmocka))$(CMOCKA_LIBS)

OPT      ?= -O2
CFLAGS   ?= $(OPT) -g
CFLAGS   += -std=c11 -Wall -Wextra -Werror -Wno-format-truncation -Wno-deprecated-declarations -MMD -MP -fno-strict-aliasing
CPPFLAGS += -D_GNU_SOURCE -I. -I$(BUILD)/gen $(PKG_CFLAGS)
LDLIBS   += $(PKG_LIBS) -lpthread -lm
ifeq ($(SAN),1)
CFLAGS   += -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
LDFLAGS  += -fsanitize=address,undefined
endif
# SAN=fuzz: the library and harnesses for clang's libFuzzer (make fuzz, fuzz-build).
ifeq ($(SAN),fuzz)
CFLAGS   += -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined \
            -fno-omit-frame-pointer -Wno-unknown-warning-option
LDFLAGS  += -fsanitize=fuzzer,address,undefined
endif

# --- generated protobuf-c code (never committed) -------------------------------------------
PROTOS   := $(shell find xds/proto -name '*.proto' | sort)
WKT      := google/protobuf/any.proto google/protobuf/duration.proto \
            google/protobuf/wrappers.proto google/protobuf/struct.proto \
            google/protobuf/empty.proto google/protobuf/timestamp.proto
GEN_C    := $(PROTOS:xds/proto/%.proto=$(BUILD)/gen/%.pb-c.c) $(WKT:%.proto=$(BUILD)/gen/%.pb-c.c)
GEN_STAMP := $(BUILD)/gen/.stamp

$(GEN_STAMP): $(PROTOS) | build-deps
	@mkdir -p $(BUILD)/gen
	$(PROTOC_C) --c_out=$(BUILD)/gen -Ixds/proto -I$(WKT_INC) \
	    $(PROTOS:xds/proto/%=%) $(WKT)
	@touch $@

# The headers are outputs of the stamp rule too: objects that include them (through their .d
# files) must wait for a regeneration and see the new times, or a parallel build after a
# .proto change links stale objects.
GEN_H    := $(GEN_C:.c=.h)
$(GEN_C) $(GEN_H): $(GEN_STAMP)
	@:

# --- library and programs ------------------------------------------------------------------
MAINS    := cmd/remora.c cmd/remoractl.c cmd/remora-cp.c
LIB_SRCS := $(filter-out $(MAINS),$(sort $(shell find base certs mesh xds proxy filters cli cp -name '*.c')))
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o) $(GEN_C:$(BUILD)/gen/%.c=$(BUILD)/obj/gen/%.o)
LIB      := $(BUILD)/libremora.a

all: $(BUILD)/remora $(BUILD)/remoractl $(BUILD)/remora-cp

# Every build goes through the generated code, so this check comes first: the build packages,
# never installed here (`make deps` does), named when missing.
build-deps:
	@scripts/deps.sh --check build >/dev/null

$(BUILD)/obj/gen/%.o: $(BUILD)/gen/%.c | $(GEN_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -Wno-unused-parameter -c $< -o $@

$(BUILD)/obj/%.o: %.c | $(GEN_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJS)
	@rm -f $@
	$(AR) rcs $@ $^

$(BUILD)/remora: $(BUILD)/obj/cmd/remora.o $(LIB)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(BUILD)/remoractl: $(BUILD)/obj/cmd/remoractl.o $(LIB)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(BUILD)/remora-cp: $(BUILD)/obj/cmd/remora-cp.o $(LIB)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

# --- tests ---------------------------------------------------------------------------------
UNIT_SRCS := $(wildcard test/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:test/unit/%.c=$(BUILD)/test/%)
FUZZ_SRCS := $(wildcard test/fuzz/fuzz_*.c)
FUZZ_REPLAY := $(FUZZ_SRCS:test/fuzz/%.c=$(BUILD)/fuzz/%-replay)

$(BUILD)/test/%: $(BUILD)/obj/test/unit/%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) $(CMOCKA_LIBS) -o $@

$(BUILD)/fuzz/%-replay: $(BUILD)/obj/test/fuzz/%.o $(BUILD)/obj/test/fuzz/replay_main.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

# Test tools: programs the e2e stories run against real peers (test/tools/grpc_driver.c drives
# the gRPC client, test/tools/grpc_echo_server.c serves echo calls on the gRPC server), linked
# against the same library, in every build (plain and ASan).
TOOL_SRCS := $(wildcard test/tools/*.c)
TOOL_BINS := $(TOOL_SRCS:test/tools/%.c=$(BUILD)/tools/%)

$(BUILD)/tools/%: $(BUILD)/obj/test/tools/%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

tools: $(TOOL_BINS) $(BUILD)/bench/xds_load

unit-build: $(UNIT_BINS) $(FUZZ_REPLAY) $(BUILD)/remora $(BUILD)/remoractl $(TOOL_BINS)

unit: unit-build
	@BUILD=$(BUILD) scripts/run-unit.sh $(UNIT_BINS) -- $(FUZZ_REPLAY)

# The targets a user types install what they need first (as root; otherwise they print the
# apt-get line and stop), then build in a new make, which asks pkg-config only then.
deps:
	@scripts/deps.sh

format:
	@scripts/deps.sh format
	clang-format -i $$(git ls-files '*.c' '*.h')

format-check:
	@scripts/format-check.sh
	@scripts/house-check.sh
	@scripts/layers-check.sh

# `make test` compiles with one job per core (JOBS) even when typed without -j: the builds, not
# the tests, are what run in parallel (each step still runs its tests one after another).
JOBS ?= $(shell nproc 2>/dev/null || echo 2)

test: deps
	@$(MAKE) --no-print-directory format-check
	@$(MAKE) --no-print-directory -j$(JOBS) unit
	@$(MAKE) --no-print-directory -j$(JOBS) BUILD=build/asan SAN=1 OPT=-O1 unit
	@$(MAKE) --no-print-directory -j$(JOBS) fuzz-check
	@$(MAKE) --no-print-directory -j$(JOBS) e2e
	@$(MAKE) --no-print-directory -j$(JOBS) e2e-asan

e2e: all tools
	@BUILD=$(BUILD) test/e2e/run.sh

# The data-path stories again against the ASan+UBSan build of remora: a leak at exit or any
# memory error fails the run (the drain and quit checks expect exit status 0).
E2E_ASAN := test/e2e/test_tcp_proxy.sh test/e2e/test_mesh_tcp.sh test/e2e/test_http.sh \
            test/e2e/test_mesh_http.sh test/e2e/test_mesh_http_routes.sh test/e2e/test_mtls.sh \
            test/e2e/test_http_buffer.sh test/e2e/test_cert_rotation.sh test/e2e/test_http2_downstream.sh \
            test/e2e/test_grpc_mesh.sh \
            test/e2e/test_http_failures.sh test/e2e/test_dns_cluster.sh test/e2e/test_runtime.sh \
            test/e2e/test_bad_config.sh test/e2e/test_admin_certs.sh test/e2e/test_mesh_mtls.sh \
            test/e2e/test_cluster_state.sh test/e2e/test_upstream_connect.sh \
            test/e2e/test_grpc_client.sh test/e2e/test_grpc_server.sh \
            test/e2e/test_xds.sh test/e2e/test_xds_live.sh test/e2e/test_xds_drain.sh \
            test/e2e/test_xds_tls.sh test/e2e/test_http2_upstream.sh \
            test/e2e/test_xds_state.sh test/e2e/test_cp_mesh.sh test/e2e/test_cp_faults.sh \
            test/e2e/test_cp_h2.sh \
            test/e2e/test_http2_abuse.sh

e2e-asan:
	@$(MAKE) --no-print-directory BUILD=build/asan SAN=1 OPT=-O1 build/asan/remora build/asan/remoractl \
	    build/asan/remora-cp tools
	@BUILD=build/asan test/e2e/run.sh $(E2E_ASAN)

demo: deps
	@$(MAKE) --no-print-directory -j$(JOBS) all
	@BUILD=$(BUILD) scripts/demo.sh

# libFuzzer builds: the same library of modules as everything else, compiled by clang with the
# fuzzer and ASan+UBSan instrumentation into build/fuzz, and each harness linked against it, so
# a harness cannot drift from the code it tests. fuzz-check (in `make test`) builds them all and
# runs each over its committed corpus once; `make fuzz` runs each for FUZZ_SECONDS.
FUZZ_CC   ?= clang
FUZZ_BUILD := build/fuzz
FUZZ_BINS := $(FUZZ_SRCS:test/fuzz/%.c=$(BUILD)/libfuzzer/%)

$(BUILD)/libfuzzer/%: $(BUILD)/obj/test/fuzz/%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

fuzz-build: $(FUZZ_BINS)

fuzz-check:
	@$(MAKE) --no-print-directory BUILD=$(FUZZ_BUILD) CC=$(FUZZ_CC) SAN=fuzz OPT=-O1 fuzz-build
	@FUZZ_BUILD=$(FUZZ_BUILD) scripts/fuzz.sh --corpus-only $(FUZZ_SRCS)

fuzz:
	@scripts/deps.sh fuzz
	@$(MAKE) --no-print-directory BUILD=$(FUZZ_BUILD) CC=$(FUZZ_CC) SAN=fuzz OPT=-O1 fuzz-build
	@FUZZ_BUILD=$(FUZZ_BUILD) scripts/fuzz.sh $(FUZZ_SRCS)

bench:
	@scripts/deps.sh bench
	@$(MAKE) --no-print-directory -j$(JOBS) all
	@BUILD=$(BUILD) bench/run.sh

# The crypto micro-benchmark (bench/crypto.sh) links mbedTLS directly and none of remora.
$(BUILD)/bench/crypto: bench/crypto.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) $< -lmbedtls -lmbedx509 -lmbedcrypto -o $@

# The ADS state machine under endpoint pushes, alone (docs/performance.md, "ADS: taking in a
# response"); run it under valgrind --tool=callgrind --toggle-collect=push_once.
$(BUILD)/bench/ads_push: $(BUILD)/obj/bench/ads_push.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

# The stats micro-measurement (bench/stats.c): heap and define time of 1,000 clusters' stats.
$(BUILD)/bench/stats: $(BUILD)/obj/bench/stats.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

# The xDS load tool (bench/xds_load*.c): many simulated sidecars against a control plane
# (bench/README.md, "xds_load"). Built with the test tools too, so its e2e story runs it.
XDS_LOAD_OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard bench/xds_load*.c))
$(BUILD)/bench/xds_load: $(XDS_LOAD_OBJS) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

# The control plane's view (bench/view.c): build and rebuild times at 1,000 services, and the
# heap a view holds; profile a rebuild with valgrind --tool=callgrind --toggle-collect=rebuild.
$(BUILD)/bench/view: $(BUILD)/obj/bench/view.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

clean:
	rm -rf build

.PHONY: all build-deps tools unit unit-build deps format format-check test e2e e2e-asan demo fuzz \
        fuzz-build fuzz-check bench clean
.SECONDARY:

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)

# HTTP/2 conformance of the reference proxies (docs/http2-peers.md): h2spec at a pinned commit,
# built with Debian's Go from the source tree H2SPEC_SRC names (h2spec is in neither Debian nor
# npm), run over h2c and TLS against HAProxy, nghttpx and nginx in front of an h2c app. Without
# H2SPEC_SRC it says loudly why it skips. Not part of `make test`.
h2spec-peers:
	@scripts/deps.sh bench
	@test/lib/h2spec.sh; rc=$$?; if [ $$rc = 77 ]; then rc=0; fi; exit $$rc

.PHONY: h2spec-peers
