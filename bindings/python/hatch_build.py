"""Build hook: with HAMMER_WHEEL_LIBRARY set to a libhammer.so (`make wheel` sets it to a stripped copy of
build/lib's, named by its SONAME), the wheel carries it as hammer/_lib/<that name> and is tagged for this platform (py3-none-linux_*:
ctypes needs no particular Python ABI). Without it the wheel is pure Python and uses the system's library."""
import os
import sysconfig

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class BundleLibrary(BuildHookInterface):
    def initialize(self, version, build_data):
        if self.target_name != "wheel":
            return
        library = os.environ.get("HAMMER_WHEEL_LIBRARY")
        if not library:
            return
        if not os.path.isfile(library):
            raise FileNotFoundError(f"HAMMER_WHEEL_LIBRARY={library}: no such file (run `make wheel`)")
        platform = sysconfig.get_platform().replace("-", "_").replace(".", "_")
        build_data["pure_python"] = False
        build_data["tag"] = f"py3-none-{platform}"
        build_data["force_include"][library] = "hammer/_lib/" + os.path.basename(library)
