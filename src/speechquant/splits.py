"""The splits a corpus holds: the three every source has, and the out-of-domain dev sets.

The out-of-domain splits are built by the synthetic source only (other sources write them
empty, and evaluation skips an empty split), so every stage can name all five whatever the
source. They are kept apart from ``store.SPLITS`` because training reads only train and dev.
"""

from speechquant.store import SPLITS

OUT_OF_DOMAIN_SPLITS = ("dev_unseen_text", "dev_unseen_voice")
ALL_SPLITS = (*SPLITS, *OUT_OF_DOMAIN_SPLITS)
