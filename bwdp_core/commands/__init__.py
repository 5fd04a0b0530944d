"""The `bwdp` commands (cli.py dispatches): each module has ``add_arguments(parser)`` and ``main(args) -> int`` and only
parses arguments, calls the library layers below and prints; no processing is written here."""
