"""PerfGenSR's Slicer side without Qt: MRML scene logic (``scene``) and background engine runs
(``process``). Ships with the Slicer module, not with the pip engine ``PerfGenSRLib``."""
