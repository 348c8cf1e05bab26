# Two commands for a fresh clone: `make reproduce` and `make test`. Each creates .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PROFILE ?= cpu
# LANES: parallel training processes before the notebooks (paper_repro/reproduction/lanes.py); 2 suits the 2-core CPU, 1 a GPU.
LANES ?= 2
SHARED_DATA := ../shared/data/prepare_cifar10.py
export PATH := $(abspath $(VENV))/bin:$(PATH)
# RUNS=DIR: the run cache in DIR instead of runs/, e.g. a folder that machines running `arms` filled (docs/cli.md).
ifdef RUNS
export PAPER_REPRO_RUNS := $(abspath $(RUNS))
endif

.PHONY: reproduce teachers paper-width test lab clean data venv bench

venv: $(STAMP)

# Pinned versions (pyproject.toml, fully frozen in constraints.txt); reinstalled only when those change.
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip==25.3"
	$(PY) -m pip install --quiet -c constraints.txt -e .
	touch $(STAMP)

# CIFAR-10 python batches in data/: the offline bundle where ../shared exists, else torchvision's download.
data: data/cifar-10-batches-py/batches.meta
data/cifar-10-batches-py/batches.meta: | $(STAMP)
	@if [ -f "$(SHARED_DATA)" ]; then $(PY) $(SHARED_DATA) data/; \
	else $(PY) -c "from paper_repro.data import load_cifar; load_cifar('cifar10', 'data')"; fi

reproduce: $(STAMP) data
	$(PY) -m paper_repro reproduce --profile $(PROFILE) --lanes $(LANES)

# The committed cpu teachers (teachers/cpu/): resume from their committed state, or RETRAIN=1 from scratch;
# BUDGET=M stops cleanly after M minutes (commit teachers/ and run again to go on). Two lanes of one thread
# each: on 2 cores that trains 1.3x faster than one process with two threads (measured, docs/profiles.md).
TEACHER_FLAGS = --profile cpu --threads 1 $(if $(BUDGET),--budget-minutes $(BUDGET)) $(if $(RETRAIN),--retrain)
# Then the paper-width teachers (config.PAPER_WIDTH: resnet56, vgg_small and mobilenetv2 at width 1.0, hours to days
# of one lane each; docs/profiles.md), MobileNetV2's (the longest) in one lane, the others in the other. The bf16 ones
# need a processor with native bf16: a lane without it skips them with one line.
teachers: $(STAMP) data
	$(PY) -m paper_repro teachers --archs mobilenetv2 $(TEACHER_FLAGS) & lane=$$!; \
	$(PY) -m paper_repro teachers --archs resnet56,vgg_small $(TEACHER_FLAGS); rc=$$?; \
	wait $$lane && test $$rc = 0 && \
	{ $(PY) -m paper_repro teachers --archs mobilenetv2 --paper-width $(TEACHER_FLAGS) & lane=$$!; \
	  $(PY) -m paper_repro teachers --archs resnet56,vgg_small --paper-width $(TEACHER_FLAGS); rc=$$?; \
	  wait $$lane && test $$rc = 0; }

# The committed runs at the paper's width (paper_width/cpu/, issue 23; docs/profiles.md), in two lanes of one
# thread each: the paper-width teacher, the method's first seed, its fine-tuning test, its second seed, the
# distilled same-FLOPs control; the labelled same-FLOPs control (it needs no teacher), the two peers, then the
# third seed last (a method run costs 5-6 h of one lane, so the controls and peers that the verdicts need come first). Every run of
# paper_width.runs("cpu") is in one lane (tests/test_paper_width.py). BUDGET=M stops each lane cleanly after M minutes (commit teachers/ and
# paper_width/, then run again to go on); ONLY=run1,run2 trains just those, in one lane; RETRAIN=1 starts the
# named runs again (never the teacher: `make teachers RETRAIN=1`).
PW_FLAGS = --profile cpu --threads 1 $(if $(BUDGET),--budget-minutes $(BUDGET)) $(if $(RETRAIN),--retrain)
paper-width: $(STAMP) data
ifdef ONLY
	$(PY) -m paper_repro paper-width --runs $(ONLY) $(PW_FLAGS)
else
	$(PY) -m paper_repro paper-width --runs control-scratch,peer-l1,peer-tp,method-s2 $(PW_FLAGS) & lane=$$!; \
	$(PY) -m paper_repro paper-width --runs teacher,method-s0,finetune,method-s1,control-distill $(PW_FLAGS); rc=$$?; \
	wait $$lane && test $$rc = 0
endif

test: $(STAMP)
	PAPER_REPRO_PROFILE=smoke $(PY) -m pytest -q -p no:cacheprovider tests
	cd notebooks && PAPER_REPRO_PROFILE=smoke ../$(PY) -m pytest -q -p no:cacheprovider --nbval-lax [0-9][0-9]_*.ipynb

bench: $(STAMP)
	$(PY) bench/loader_overhead.py
	$(PY) bench/sparsity_step.py
	$(PY) bench/epoch_time.py --archs resnet56 --steps 20 --warmup 3

# JupyterLab on the project's .venv (its python3 kernel is the venv's); --allow-root where the user is root
# (containers), since Jupyter refuses to start as root otherwise.
lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks/ $$(test "$$(id -u)" = 0 && echo --allow-root)

clean:
	rm -rf build runs/baselines/*-synthetic-* runs/prune/*-smoke-* runs/classic/*-smoke-* runs/peer/*-smoke-* \
		.pytest_cache .hypothesis
	find . -name __pycache__ -prune -exec rm -rf {} +
