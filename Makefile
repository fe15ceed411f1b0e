# lead_enrich: PGXS build.  `scripts/test.sh` and `scripts/demo.sh` do the
# whole set-up (packages, build, cluster, provider); this file only builds.

EXTENSION = lead_enrich
EXTVERSION = 1.0
MODULE_big = lead_enrich
OBJS = $(patsubst %.c,%.o,$(wildcard src/*.c))
DATA = $(wildcard sql/$(EXTENSION)--*.sql)
REGRESS = $(patsubst sql/%.sql,%,$(filter-out sql/$(EXTENSION)--%,$(wildcard sql/*.sql)))

PG_CONFIG ?= pg_config
CURL_CONFIG ?= curl-config
PG_CPPFLAGS = -Isrc $(shell $(CURL_CONFIG) --cflags 2>/dev/null)
PG_CFLAGS = -std=gnu11 -Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers
SHLIB_LINK = $(shell $(CURL_CONFIG) --libs 2>/dev/null)
# PGXS on Debian also emits LLVM bitcode with clang; it is not needed here.
with_llvm = no

PGXS := $(shell $(PG_CONFIG) --pgxs 2>/dev/null)
ifneq ($(PGXS),)
include $(PGXS)
endif

.PHONY: demo test provider
provider:
	$(MAKE) -C provider
demo:
	./scripts/demo.sh
test:
	./scripts/test.sh

# The regression tests, for scripts/test.sh.
print-regress:
	@echo $(REGRESS)
