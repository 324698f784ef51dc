"""The Debian package (docs/packaging.md, cmake/packaging.cmake).

Builds the .deb with cpack from the already built binaries into a temporary
directory (not build/: ctest runs other tests next to this one), then checks
it the way a user and Debian's tools see it: the file list and control fields
(dpkg-deb), the extracted server's --version, lintian (no errors), and
systemd-analyze verify on the packaged unit with its ExecStart pointing at the
extracted binary. Skipped when dpkg-deb or lintian is missing
(scripts/setup-deps installs lintian).
"""

import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import unittest

from harness import BUILD_DIR, PROVIDER, SERVER

CPACK_CONFIG = os.path.join(BUILD_DIR, "CPackConfig.cmake")
UNIT = "voicebot-server.service"
UNIT_PATH = "lib/systemd/system/" + UNIT
CONFFILE = "/etc/voicebot-server/voicebot-server.json"
DOC = "usr/share/doc/voicebot-server/"


def cpack_program():
    """cpack next to the cmake that configured the build tree, else on PATH."""
    try:
        with open(os.path.join(BUILD_DIR, "CMakeCache.txt")) as f:
            for line in f:
                if line.startswith("CMAKE_COMMAND:"):
                    candidate = os.path.join(os.path.dirname(line.split("=", 1)[1].strip()), "cpack")
                    if os.access(candidate, os.X_OK):
                        return candidate
    except OSError:
        pass
    return shutil.which("cpack")


def cpack_setting(name):
    with open(CPACK_CONFIG) as f:
        m = re.search(r'^set\(%s "([^"]*)"\)$' % re.escape(name), f.read(), re.M)
    return m.group(1) if m else None


def run(args, timeout=60, **kw):
    return subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          errors="replace", timeout=timeout, **kw)


class PackageTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        missing = [tool for tool in ("dpkg-deb", "dpkg-shlibdeps", "lintian") if not shutil.which(tool)]
        if missing:
            raise unittest.SkipTest(f"{', '.join(missing)} not installed (scripts/setup-deps)")
        cls.cpack = cpack_program()
        if not cls.cpack:
            raise unittest.SkipTest("cpack not found")
        for path in (CPACK_CONFIG, SERVER, PROVIDER):
            if not os.path.exists(path):
                raise AssertionError(f"{path} is missing: configure and build {BUILD_DIR} first")
        cls.version = cpack_setting("CPACK_PACKAGE_VERSION")
        cls.tmp = tempfile.mkdtemp(prefix="vb-package-")
        cls.out = os.path.join(cls.tmp, "out")
        # CPACK_CMAKE_GENERATOR=Ninja: only to skip cpack's "preinstall" step,
        # which for a Makefile tree runs `make preinstall` (that is, `make
        # all`) in the build tree, relinking binaries other tests are running
        # when a source changed since the build. Ninja has no preinstall
        # target; the install step is cmake_install.cmake either way.
        result = run([cls.cpack, "--config", CPACK_CONFIG, "-G", "DEB", "-B", cls.out,
                      "-D", "CPACK_CMAKE_GENERATOR=Ninja"], timeout=240)
        if result.returncode != 0:
            shutil.rmtree(cls.tmp, ignore_errors=True)
            raise AssertionError(f"cpack failed ({result.returncode}):\n{result.stdout}")
        arch = run(["dpkg", "--print-architecture"]).stdout.strip()
        cls.deb = os.path.join(cls.out, f"voicebot-server_{cls.version}_{arch}.deb")
        if not os.path.isfile(cls.deb):
            shutil.rmtree(cls.tmp, ignore_errors=True)
            raise AssertionError(f"cpack did not write {cls.deb}:\n{result.stdout}\n"
                                 f"{os.listdir(cls.out)}")
        cls.arch = arch
        cls.root = os.path.join(cls.tmp, "root")
        result = run(["dpkg-deb", "-x", cls.deb, cls.root])
        if result.returncode != 0:
            shutil.rmtree(cls.tmp, ignore_errors=True)
            raise AssertionError(f"dpkg-deb -x failed:\n{result.stdout}")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def field(self, name):
        result = run(["dpkg-deb", "-f", self.deb, name])
        self.assertEqual(result.returncode, 0, result.stdout)
        return result.stdout.strip()

    def test_file_list(self):
        result = run(["dpkg-deb", "-c", self.deb])
        self.assertEqual(result.returncode, 0, result.stdout)
        entries = {}
        for line in result.stdout.splitlines():
            parts = line.split(None, 5)
            entries[parts[5].split(" -> ")[0]] = (parts[0], parts[1])
        expected = {
            "./usr/bin/voicebot-server": "-rwxr-xr-x",
            "./usr/bin/voicebot-provider": "-rwxr-xr-x",
            "." + CONFFILE: "-rw-r--r--",
            "./" + UNIT_PATH: "-rw-r--r--",
            "./" + DOC + "copyright": "-rw-r--r--",
            "./" + DOC + "changelog.gz": "-rw-r--r--",
            "./" + DOC + "README.md": "-rw-r--r--",
            "./" + DOC + "operations.md": "-rw-r--r--",
            "./" + DOC + "packaging.md": "-rw-r--r--",
            "./" + DOC + "security.md": "-rw-r--r--",
            "./usr/share/man/man1/voicebot-server.1.gz": "-rw-r--r--",
            "./usr/share/man/man1/voicebot-provider.1.gz": "-rw-r--r--",
        }
        for path, mode in expected.items():
            with self.subTest(path=path):
                self.assertIn(path, entries, result.stdout)
                self.assertEqual(entries[path], (mode, "root/root"))
        for path, (mode, owner) in entries.items():
            with self.subTest(path=path):
                self.assertEqual(owner, "root/root")
                if mode.startswith("d"):
                    self.assertEqual(mode, "drwxr-xr-x")
                self.assertRegex(path, r"^\./(usr/(bin|share/(doc/voicebot-server|man/man1))|etc|lib)"
                                       r"|^\./(usr/|usr/share/|usr/share/doc/|usr/share/man/)?$",
                                 "a file outside what the package should hold")

    def test_control_fields(self):
        self.assertEqual(self.field("Package"), "voicebot-server")
        self.assertEqual(self.field("Version"), self.version)
        self.assertEqual(self.field("Architecture"), self.arch)
        self.assertEqual(self.field("Section"), "net")
        self.assertEqual(self.field("Priority"), "optional")
        self.assertRegex(self.field("Maintainer"), r"^[^<]+ <[^@>]+@[^>]+>$")
        description = self.field("Description").splitlines()
        self.assertGreater(len(description), 3, "a synopsis and a long description")
        depends = [d.strip() for d in self.field("Depends").split(",")]
        names = [d.split()[0] for d in depends]
        print("Depends:", ", ".join(depends))
        for lib in ("adduser", "libcaf-core0.17", "libcaf-io0.17", "libssl3",
                    "libjwt0", "libc6", "libstdc++6"):
            with self.subTest(depends=lib):
                self.assertIn(lib, names)
        self.assertTrue(any(n.startswith("libspdlog") for n in names), depends)
        self.assertTrue(any(n.startswith("libprometheus-cpp-core") for n in names), depends)

    def test_control_archive(self):
        with tempfile.TemporaryFile() as f:
            subprocess.run(["dpkg-deb", "--ctrl-tarfile", self.deb], check=True, stdout=f,
                           timeout=60)
            f.seek(0)
            with tarfile.open(fileobj=f) as tar:
                members = {os.path.normpath(m.name): m for m in tar.getmembers() if m.isfile()}
                conffiles = tar.extractfile(members["conffiles"]).read().decode().split()
                scripts = {name: tar.extractfile(members[name]).read().decode()
                           for name in ("postinst", "prerm", "postrm")}
        self.assertEqual(conffiles, [CONFFILE])
        self.assertEqual(members["conffiles"].mode & 0o777, 0o644)
        self.assertIn("md5sums", members)
        for name, text in scripts.items():
            with self.subTest(script=name):
                self.assertEqual(members[name].mode & 0o777, 0o755)
                self.assertTrue(text.startswith("#!/bin/sh\n"))
                self.assertIn("set -e", text)
                check = run(["sh", "-n", "/dev/stdin"], input=text)
                self.assertEqual(check.returncode, 0, check.stdout)
        postinst = scripts["postinst"]
        self.assertIn("adduser --quiet --system --group --home /var/lib/voicebot-server", postinst)
        self.assertIn("deb-systemd-helper enable 'voicebot-server.service'", postinst)
        self.assertIn("if [ -d /run/systemd/system ]", postinst)
        self.assertIn("deb-systemd-invoke stop 'voicebot-server.service'", scripts["prerm"])
        self.assertIn("rm -rf /var/lib/voicebot-server", scripts["postrm"])

    def test_extracted_binaries_run_and_are_stripped(self):
        for name in ("voicebot-server", "voicebot-provider"):
            with self.subTest(binary=name):
                binary = os.path.join(self.root, "usr", "bin", name)
                result = run([binary, "--version"], timeout=20)
                self.assertEqual(result.returncode, 0, result.stdout)
                self.assertEqual(result.stdout.strip(), f"{name} {self.version}")
                if shutil.which("readelf"):
                    sections = run(["readelf", "-S", "-W", binary]).stdout
                    self.assertNotIn(".debug_info", sections)
                    self.assertNotIn(".symtab", sections)

    def test_lintian_finds_no_errors(self):
        # --no-cfg: the machine's ~/.lintianrc or /etc/lintianrc (profiles,
        # suppressed tags) does not change the verdict.
        result = run(["lintian", "--no-cfg", "--display-info", "--show-overrides",
                      "--tag-display-limit", "0", self.deb], timeout=180)
        print(f"lintian ({result.returncode}):\n{result.stdout}")
        errors = [line for line in result.stdout.splitlines() if line.startswith("E:")]
        self.assertEqual(errors, [], f"lintian errors; its whole output:\n{result.stdout}")
        self.assertEqual(result.returncode, 0, f"lintian failed:\n{result.stdout}")

    def test_systemd_analyze_verifies_the_unit(self):
        analyze = shutil.which("systemd-analyze")
        if not analyze:
            self.skipTest("systemd-analyze not installed: the unit is not verified")
        with open(os.path.join(self.root, UNIT_PATH)) as f:
            unit = f.read()
        self.assertIn("ExecStart=/usr/bin/voicebot-server ", unit)
        # verify checks that ExecStart's binary exists and is executable: point
        # it at the extracted one (the rest of the line as packaged). Another
        # --root= would need the system's units (sysinit.target, ...) there.
        extracted = os.path.join(self.root, "usr", "bin", "voicebot-server")
        unit_dir = os.path.join(self.tmp, "units")
        os.makedirs(unit_dir, exist_ok=True)

        def verify(text):
            copy = os.path.join(unit_dir, UNIT)
            with open(copy, "w") as f:
                f.write(text.replace("ExecStart=/usr/bin/voicebot-server ",
                                     f"ExecStart={extracted} "))
            result = run([analyze, "verify", "--man=no", copy], timeout=60,
                         env=dict(os.environ, SYSTEMD_LOG_COLOR="0"))
            # Lines about other units (a container's own) are not ours.
            ours = [line for line in result.stdout.splitlines()
                    if UNIT in line or unit_dir in line or "voicebot" in line]
            return result, ours

        result, ours = verify(unit)
        print(f"systemd-analyze verify ({result.returncode}):\n{result.stdout}")
        self.assertEqual(ours, [], result.stdout)
        self.assertEqual(result.returncode, 0, result.stdout)

        # The check is real: verify exits 0 on an unknown or malformed
        # directive but says so (caught by the filter above), and fails a
        # missing ExecStart binary.
        result, ours = verify(unit.replace("[Install]", "ProtectFoo=yes\n[Install]"))
        self.assertTrue(any("Unknown key" in line and "ProtectFoo" in line for line in ours),
                        result.stdout)
        result, ours = verify(unit.replace("ExecStart=/usr/bin/voicebot-server ",
                                           "ExecStart=/usr/bin/voicebot-server-missing "))
        self.assertNotEqual(result.returncode, 0, result.stdout)
        self.assertTrue(any("voicebot-server-missing" in line for line in ours), result.stdout)


if __name__ == "__main__":
    unittest.main()
