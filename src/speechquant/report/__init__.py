"""Everything a person reads, in one place: Markdown (``markdown``) and figures (``figures``).

Fed from the metrics dicts and plot data the stages wrote; nothing here measures anything.
"""
