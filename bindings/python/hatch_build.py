"""Build hook: which libhammer.so a wheel carries, if any.

- HAMMER_WHEEL_LIBRARY set to a libhammer.so (`make wheel` sets it to a stripped copy of build/lib's, named by its
  SONAME): the wheel carries it as hammer/_lib/<that name> and is tagged for this platform (py3-none-linux_*: ctypes
  needs no particular Python ABI); `make wheel` then makes it a manylinux wheel with auditwheel.
- Else, in a source package (`make sdist`), whose native/ holds the library's sources and Makefile: `make -C native
  lib` builds it (Swift 6 and the headers of hiredis and OpenSSL must be installed) and the wheel carries it.
- Else (`pip install ./bindings/python` in the repository): the wheel is pure Python and uses the system's library.
"""
import os
import shutil
import subprocess
import sysconfig

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

SONAME = "libhammer.so.1"


class BundleLibrary(BuildHookInterface):
    def initialize(self, version, build_data):
        if self.target_name != "wheel":
            return
        library = os.environ.get("HAMMER_WHEEL_LIBRARY")
        native = os.path.join(self.root, "native")
        if library:
            if not os.path.isfile(library):
                raise FileNotFoundError(f"HAMMER_WHEEL_LIBRARY={library}: no such file (run `make wheel`)")
        elif os.path.isfile(os.path.join(native, "Makefile")):
            library = self._build_from_source(native)
        else:
            return
        platform = sysconfig.get_platform().replace("-", "_").replace(".", "_")
        build_data["pure_python"] = False
        build_data["tag"] = f"py3-none-{platform}"
        build_data["force_include"][library] = "hammer/_lib/" + os.path.basename(library)

    def _build_from_source(self, native):
        make = shutil.which("make")
        swift = os.environ.get("SWIFT") or shutil.which("swift")
        if make is None or swift is None:
            raise RuntimeError("hammer-ratelimit from source needs make and Swift 6 on the PATH (and the Debian "
                               "packages libhiredis-dev, libssl-dev and pkg-config): " + ("make" if make is None
                                                                                           else "swift") +
                               " was not found. A manylinux wheel needs none of them (`make wheel`).")
        self.app.display_info(f"hammer-ratelimit: building libhammer with `make -C {native} lib` (Swift, a few "
                              "minutes)")
        subprocess.run([make, "-C", native, "lib", f"SWIFT={swift}"], check=True)
        built = os.path.join(native, "build", "lib", SONAME)
        if not os.path.isfile(built):
            raise FileNotFoundError(f"`make lib` did not produce {built}")
        out = os.path.join(native, "build", "wheel", SONAME)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        shutil.copyfile(os.path.realpath(built), out)
        strip = shutil.which("strip")
        if strip:
            subprocess.run([strip, "--strip-unneeded", out], check=True)
        return out
