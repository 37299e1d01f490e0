"""``make demo``: the whole loop on real data (see :mod:`mlops.demo.story`)."""
