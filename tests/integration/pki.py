"""Test certificates made by the openssl CLI (EC P-256) in a directory:
CAs and the certificates they sign, as NAME.pem and NAME.key."""

import os
import subprocess


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


class Pki:
    def __init__(self, dir):
        self.dir = dir
        os.makedirs(dir, exist_ok=True)

    def make_ca(self, name="ca"):
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2",
                "-subj", f"/CN={name}", cwd=self.dir)
        return self

    def make(self, name, ca="ca", san=None, days=2, common_name=True):
        """A certificate `ca` signed, for a server and a client; `san`
        ("IP:127.0.0.1") names the server; `days` -1: expired since
        yesterday; without `common_name` its subject has none."""
        subject = f"/CN={name}" if common_name else f"/O=voicebot/OU={name}"
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject,
                cwd=self.dir)
        ext = os.path.join(self.dir, f"{name}.ext")
        with open(ext, "w") as f:
            f.write("basicConstraints=CA:FALSE\n"
                    "extendedKeyUsage=serverAuth,clientAuth\n"
                    + (f"subjectAltName={san}\n" if san else ""))
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
                "-CAcreateserial", "-out", f"{name}.pem", "-days", str(days), "-extfile", ext,
                cwd=self.dir)
        return self.path(name + ".pem"), self.path(name + ".key")

    def path(self, file):
        return os.path.join(self.dir, file)
