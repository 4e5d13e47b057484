"""The faults a rehearsal can inject, by name, and what each does at the device's end of the link.

Every fault lasts from the moment it is injected until the server closes (a fresh rig gets healthy
servers), so whatever the driver asks next meets it:

| fault | serial devices (ProScan, PI GCS, NE-1000) | uMp (SMCP over UDP) | camera (pylon emulation) |
|---|---|---|---|
| ``drop_reply`` | commands are obeyed, every reply is lost | requests obeyed, nothing comes back | every image is lost (the grab times out) |
| ``garbage`` | every reply is replaced by unparseable bytes | every datagram back is garbage | every buffer arrives corrupted |
| ``error_code`` | every command but a stop is refused with the device's error code (ProScan ``E,3``, NE-1000 ``?NA``, PI error 1024) | every drive fails at once (drive status -1, no motion) | every trigger fails with a GenICam error |
| ``delay`` | every reply comes ``DELAY_S`` late (commands are obeyed at once) | same | every image comes ``DELAY_S`` late |
| ``disconnect`` | the cable is pulled (the port hangs up) | the device hears and says nothing | the camera is unplugged |
| ``stall`` | the device hangs: it answers nothing and obeys nothing but a stop | same | the camera hangs: the trigger is never ready |

Stops are still obeyed under every fault but ``disconnect``: the faults test how the program notices
and reports them, not whether a broken device can be stopped (a pulled cable leaves a pump to its own
safe-mode watchdog, a moving stage or drive to the end of its last, short, command).
"""

from __future__ import annotations

FAULTS = ("drop_reply", "garbage", "error_code", "delay", "disconnect", "stall")
#: how late every reply (or image) comes under ``delay``: longer than any driver's reply timeout
DELAY_S = 2.0
#: a fault counter that never runs out
ALWAYS = 10**9


def check_fault(fault: str) -> str:
    if fault not in FAULTS:
        raise ValueError(f"unknown fault {fault!r} (known: {', '.join(FAULTS)})")
    return fault
