"""Library noise kept out of command output: the CLI draws its own progress (rich) and prints its own
one-line notices, so the libraries' tqdm bars and chatty warnings only interleave with them.

- tqdm bars: ``TQDM_DISABLE`` (tqdm >= 4.66 reads ``TQDM_*`` defaults from the environment when it is
  imported) covers sentence-transformers' "Computing widget examples" (model card generation at
  every save) and any other library tqdm; ``HF_HUB_DISABLE_PROGRESS_BARS`` covers huggingface_hub's
  and transformers' ("Loading weights", "Writing model shards"), which are read when
  huggingface_hub is first imported. Both only as defaults: a user's own setting wins.
- sentence-transformers' Router warns "Different max_seq_lengths detected: {512, 128}" for every
  inference-free model, whose query route is deliberately shorter than its document route.

Call :func:`quiet_libraries` before anything imports tqdm or huggingface_hub (the entry points do). Where
huggingface_hub or transformers is already imported (a program that imported the library first, or a test
process), their bars are switched off directly as well, unless the user set ``HF_HUB_DISABLE_PROGRESS_BARS``.
"""

from __future__ import annotations

import logging
import os
import sys

_QUIET_LOGGERS = ("sentence_transformers.base.modules.router",)


def quiet_libraries() -> None:
    users_choice = "HF_HUB_DISABLE_PROGRESS_BARS" in os.environ
    os.environ.setdefault("TQDM_DISABLE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if not users_choice:  # the environment is read at import: too late for libraries already loaded
        if "huggingface_hub" in sys.modules:
            from huggingface_hub.utils import disable_progress_bars

            disable_progress_bars()
        # Reached through sys.modules, never imported here: the query side imports this module and
        # must not pull in transformers (and torch) by doing so.
        transformers_logging = sys.modules.get("transformers.utils.logging")
        if transformers_logging is not None:
            transformers_logging.disable_progress_bar()
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
