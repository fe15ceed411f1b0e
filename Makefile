# lead_enrich: PGXS build.  `scripts/test.sh` and `scripts/demo.sh` do the
# whole set-up (packages, build, cluster, provider); this file only builds.

EXTENSION = lead_enrich
EXTVERSION = 1.0
MODULE_big = lead_enrich
OBJS = $(patsubst %.c,%.o,$(wildcard src/*.c))
# The install script of the current version is assembled from sql/install/;
# upgrade scripts (sql/lead_enrich--A--B.sql) and older versions' install
# scripts are kept as they shipped.
DATA_built = $(EXTENSION)--$(EXTVERSION).sql
DATA = $(filter-out sql/$(EXTENSION)--$(EXTVERSION).sql,$(wildcard sql/$(EXTENSION)--*.sql))
REGRESS = $(patsubst sql/%.sql,%,$(filter-out sql/$(EXTENSION)--%,$(wildcard sql/*.sql)))
EXTRA_CLEAN = $(EXTENSION)--$(EXTVERSION).sql

PG_CONFIG ?= pg_config
CURL_CONFIG ?= curl-config
PG_CPPFLAGS = -Isrc $(shell $(CURL_CONFIG) --cflags 2>/dev/null)
PG_CFLAGS = -std=gnu11 -Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers
SHLIB_LINK = $(shell $(CURL_CONFIG) --libs 2>/dev/null)
PGXS := $(shell $(PG_CONFIG) --pgxs 2>/dev/null)
ifneq ($(PGXS),)
include $(PGXS)
endif
# PGXS on Debian also emits LLVM bitcode with clang; it is not needed here.
with_llvm = no

$(EXTENSION)--$(EXTVERSION).sql: $(sort $(wildcard sql/install/*.sql))
	cat $^ > $@

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
