# Two entry points, each creating its own environment on a fresh machine (Python 3.11, pip, make).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: run test lint bench bench-accuracy system-deps clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

# Headless Chromium and a Chinese font, from Debian's packages, for report.png and the browser test.
# Installed when missing and this is root with apt-get; otherwise the PNG (and that test) is skipped.
system-deps:
	@if command -v chromium >/dev/null 2>&1 && fc-list 2>/dev/null | grep -qi -e wqy -e noto.*cjk; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		apt-get install -y -q chromium fonts-wqy-microhei >/dev/null 2>&1 || \
		{ apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium fonts-wqy-microhei >/dev/null; }; \
	else echo "gridsweep: no Chromium: report.png and the browser test will be skipped"; fi

run: $(STAMP) system-deps
	$(BIN)/gridsweep run

test: $(STAMP) system-deps
	$(BIN)/ruff check flows transforms expectations tests bench
	$(BIN)/python -m pytest -q -p no:cacheprovider -n 2 --dist loadfile

bench: $(STAMP)
	$(BIN)/python bench/refresh_1m.py

bench-accuracy: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python bench/accuracy.py

clean:
	rm -rf $(VENV) out state
