# lead_enrich: PGXS build.  `scripts/test.sh` and `scripts/demo.sh` do the
# whole set-up (packages, build, cluster, provider); this file builds, and
# `make installcheck` runs the pg_regress suite against a running server.

EXTENSION = lead_enrich
EXTVERSION = 1.2
MODULE_big = lead_enrich
OBJS = $(patsubst %.c,%.o,$(wildcard src/*.c))
# The install script of the current version is assembled from sql/install/;
# upgrade scripts (sql/lead_enrich--A--B.sql) and older versions' install
# scripts are kept as they shipped.
DATA_built = $(EXTENSION)--$(EXTVERSION).sql
DATA = $(filter-out sql/$(EXTENSION)--$(EXTVERSION).sql,$(wildcard sql/$(EXTENSION)--*.sql))
REGRESS = $(patsubst sql/%.sql,%,$(filter-out sql/$(EXTENSION)--%,$(wildcard sql/*.sql)))
EXTRA_CLEAN = $(EXTENSION)--$(EXTVERSION).sql tmp_installcheck
# what `make installcheck` starts first (below); set before PGXS reads it
REGRESS_PREP = installcheck-services

PG_CONFIG ?= pg_config
CURL_CONFIG ?= curl-config
PG_CPPFLAGS = -Isrc $(shell $(CURL_CONFIG) --cflags 2>/dev/null)
PG_CFLAGS = -std=gnu11 -Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers
SHLIB_LINK = $(shell $(CURL_CONFIG) --libs 2>/dev/null)
# PGXS on Debian also emits LLVM bitcode with clang; it is not needed here.
# (Makefile.global sets with_llvm and PGXS tests it as it is read: only an
# override before the include turns it off.)
override with_llvm = no
PGXS := $(shell $(PG_CONFIG) --pgxs 2>/dev/null)
ifneq ($(PGXS),)
include $(PGXS)
endif

# PGXS tracks header dependencies only in a server configured with
# --enable-depend (Debian's is not): without this line, a header change
# rebuilt only the .c files that changed with it, and an object built
# against the old header stayed in the library.  That is how a merge that
# grew struct LeadTable (lead_table.h) left enrich.o allocating the old,
# smaller struct, and lt_prepare wrote its new fields over the next chunk
# (test/t_build.sh).  Every object depends on every header: they are few.
$(OBJS): $(wildcard src/*.h)

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

# `make installcheck` (PGXS) runs them against the server libpq's
# environment names (PGHOST, PGPORT, PGUSER), which must preload
# lead_enrich.  scripts/installcheck_services.sh first starts what they call
# unless it is already running: the reference provider (database
# lead_provider on that server) and test/fault_server.py, and stops them when
# make exits.  The tests' sessions get the two endpoints from PGOPTIONS
# (superuser settings, for these sessions only: nothing is stored in the
# server); each test sets its own account token with set_config().
LE_PROVIDER_PORT ?= 57070
LE_FAULT_PORT ?= 57071
installcheck: export PGOPTIONS += -c lead_enrich.endpoint=http://127.0.0.1:$(LE_PROVIDER_PORT) \
	-c regress.fault_endpoint=http://127.0.0.1:$(LE_FAULT_PORT)
.PHONY: installcheck-services
installcheck-services:
	@LE_PROVIDER_PORT=$(LE_PROVIDER_PORT) LE_FAULT_PORT=$(LE_FAULT_PORT) PSQL='$(bindir)/psql' \
		$(srcdir)/scripts/installcheck_services.sh $$PPID

# Formatting and static analysis (docs/developing.md): `make format` fixes
# the layout, `make format-check` prints the drift and fails, `make lint`
# runs format-check, cppcheck and clang-tidy over src/ and provider/src/.
CLANG_FORMAT ?= clang-format
CLANG_TIDY ?= clang-tidy
CPPCHECK ?= cppcheck
LINT_PG_INCLUDEDIR_SERVER := $(shell $(PG_CONFIG) --includedir-server 2>/dev/null)
LINT_PG_INCLUDEDIR := $(shell $(PG_CONFIG) --includedir 2>/dev/null)
LINT_EXT_SRCS = $(sort $(wildcard src/*.c))
LINT_PROVIDER_SRCS = $(sort $(wildcard provider/src/*.c))
# provider/src/schema_sql.h is generated from provider/schema.sql,
# src/psl_rules.h from the Public Suffix List (scripts/gen_psl.py).
FORMAT_FILES = $(sort $(filter-out src/psl_rules.h,$(wildcard src/*.c src/*.h)) \
	$(filter-out provider/src/schema_sql.h,$(wildcard provider/src/*.c provider/src/*.h)))
LINT_EXT_FLAGS = -std=gnu11 -Isrc -I$(LINT_PG_INCLUDEDIR_SERVER) -I$(LINT_PG_INCLUDEDIR) \
	$(shell $(CURL_CONFIG) --cflags 2>/dev/null)
LINT_PROVIDER_FLAGS = -std=gnu11 -pthread -Iprovider/src -I$(LINT_PG_INCLUDEDIR)
# cppcheck reads the project's and PostgreSQL's headers, not the C library's
# (--library=posix describes those); one preprocessor configuration is
# enough and keeps it to seconds.
CPPCHECK_FLAGS = -q -j2 --max-configs=1 --std=c11 --library=posix \
	--enable=warning,style,performance,portability --inline-suppr \
	--suppressions-list=.cppcheck-suppressions --error-exitcode=1

.PHONY: format format-check lint lint-cppcheck lint-tidy
format:
	$(CLANG_FORMAT) -i --style=file $(FORMAT_FILES)

format-check:
	@rc=0; for f in $(FORMAT_FILES); do \
		$(CLANG_FORMAT) --style=file "$$f" | diff -u --label "$$f" --label "$$f (clang-format)" "$$f" - || rc=1; \
	done; \
	if [ $$rc = 0 ]; then echo "format-check: ok"; else echo "format-check: FAILED, run 'make format'" >&2; fi; \
	exit $$rc

provider/src/schema_sql.h: provider/schema.sql
	$(MAKE) -C provider src/schema_sql.h

lint-cppcheck: provider/src/schema_sql.h
	@rc=0; \
	$(CPPCHECK) $(CPPCHECK_FLAGS) -Isrc -I$(LINT_PG_INCLUDEDIR_SERVER) -I$(LINT_PG_INCLUDEDIR) $(LINT_EXT_SRCS) || rc=1; \
	$(CPPCHECK) $(CPPCHECK_FLAGS) -Iprovider/src -I$(LINT_PG_INCLUDEDIR) $(LINT_PROVIDER_SRCS) || rc=1; \
	if [ $$rc = 0 ]; then echo "cppcheck: ok"; else echo "cppcheck: FAILED" >&2; fi; \
	exit $$rc

lint-tidy: provider/src/schema_sql.h
	@rc=0; \
	for f in $(LINT_EXT_SRCS); do \
		$(CLANG_TIDY) --quiet "$$f" -- $(LINT_EXT_FLAGS) 2>/dev/null || rc=1; \
	done; \
	for f in $(LINT_PROVIDER_SRCS); do \
		$(CLANG_TIDY) --quiet "$$f" -- $(LINT_PROVIDER_FLAGS) 2>/dev/null || rc=1; \
	done; \
	if [ $$rc = 0 ]; then echo "clang-tidy: ok"; else echo "clang-tidy: FAILED" >&2; fi; \
	exit $$rc

# All three, each run even when another fails.
lint:
	@$(MAKE) --no-print-directory -k format-check lint-cppcheck lint-tidy
