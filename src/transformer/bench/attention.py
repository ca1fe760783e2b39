"""Placeholder: replaced by the attention benchmark."""


def add_arguments(parser) -> None:
    pass


def run(args) -> int:
    raise SystemExit("bench attention: not written yet")
