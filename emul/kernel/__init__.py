"""The emulated kernel: numba-compiled paths on the arena's shared arrays, with the kernel's
names (zram.py, zsmalloc.py, mm.py, swapfile.py, notify.py …). It imports nothing above it but
config's leaves; its one seam to the strategies is gc_hooks.py."""
