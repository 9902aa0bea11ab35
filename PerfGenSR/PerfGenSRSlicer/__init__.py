"""PerfGenSR's Slicer side without Qt. Ships with the Slicer module, not with the pip engine
``PerfGenSRLib``; the module file ``PerfGenSR.py`` (the panel) calls these and does no work itself.

- ``scene``: volume sequences to and from a ``Study``, the module logics, browsers, window/level;
- ``results``: super-resolved sequences in the input's browser, their labels, attributes, references;
- ``rois``: ROI segments, their masks, and the signal-time curves as a table and a plot chart;
- ``views``: the compare layout, its view nodes and the uncertainty overlay;
- ``process``: the engine in a background process (progress, log, cancel, exchange files);
- ``engineinfo``: what the panel knows of the engine without torch (packages, models, devices).

The MRML modules take the scene (or nodes in it) explicitly, so the same code runs inside 3D
Slicer and under the PyPI ``slicer-core`` package (real MRML nodes, no application), where the tests
run; their public names are camelCase, as in Slicer's own Python API. They import one another only
downwards: ``results`` and ``rois`` use ``scene``; ``views`` stands alone.
"""
