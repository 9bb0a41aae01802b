"""A simulated Milesight LPR camera, for tests, demos and benchmarks.

It speaks the transports of the vendor guide on loopback: the TCP LPR port
(:mod:`.tcp`); the HTTP pusher and the RTSP/ONVIF side join as they are built.
"""

from .script import Read, ReadFactory, fake_jpeg
from .tcp import TcpCameraServer, TcpFaults

__all__ = ["Read", "ReadFactory", "TcpCameraServer", "TcpFaults", "fake_jpeg"]
