# Convenience targets; each delegates to the scripts the README names.
.PHONY: setup demo test bench
setup:
	bash scripts/setup.sh
demo:
	bash scripts/demo.sh
test:
	bash scripts/test.sh
