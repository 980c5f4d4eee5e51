"""A seeded B-mode simulator of the FPUS23 fetus phantom (23 weeks), numpy + OpenCV only.

One fetus in a sector (fan) field of view, with speckle, depth attenuation and gain, acoustic shadows
behind bone and bright specular boundaries. Its geometry (orientation, probe direction, body level,
tilt, position) drives every label, so the diagnostic plane, orientation, anatomy in view and boxes
agree with the picture by construction::

    >>> from edge.core.phantom import sample, sweep
    >>> f = sample(seed=0, n=4, height=96, width=96)[1]
    >>> f.image.shape, f.plane, "head" in f.anatomy
    ((96, 96), 'BPD', True)

Torch-free: the device runtime plays `sweep(...)` as a frame source.
"""
from edge.core.phantom.scene import ORIENTATIONS, PARTS, View, flip_orientation, layout
from edge.core.phantom.stream import PLANES, PhantomFrame, sample, sweep, sweep_stream

__all__ = ["PhantomFrame", "sample", "sweep", "sweep_stream", "View", "layout", "flip_orientation",
           "ORIENTATIONS", "PARTS", "PLANES"]
