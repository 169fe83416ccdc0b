"""Imported by each rank of a distributed AllenNLP trial (through `include_package`): the ranks are
spawned, not forked, so they install here what the worker installed before forking."""

from snakesweep.launchers.allennlp_compat import install

install()
