"""Certificates for the TLS tests, made at test time with the openssl command (never checked in):
a CA; a server certificate for DNS:localhost and IP:127.0.0.1 signed by it; the same server key with an expired
certificate; a client certificate; a second CA that signed nothing of ours; and a CA directory (hashed names) for
ssl_ca_path. EC keys (P-256): quick to make."""
import os
import shutil
import subprocess

OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"


def _run(*args, cwd):
    subprocess.run([OPENSSL, *args], cwd=cwd, check=True, capture_output=True)


class Certs:
    def __init__(self, directory):
        self.dir = directory
        os.makedirs(directory, exist_ok=True)
        p = lambda name: os.path.join(directory, name)  # noqa: E731
        self.ca, self.ca_key = p("ca.crt"), p("ca.key")
        self.other_ca = p("other-ca.crt")
        self.server, self.server_key = p("server.crt"), p("server.key")
        self.expired = p("expired.crt")
        self.client, self.client_key = p("client.crt"), p("client.key")
        self.ca_dir = p("ca-dir")
        self._make()

    def _key(self, name):
        _run("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", name, cwd=self.dir)

    def _ca(self, name, cn):
        self._key(name + ".key")
        _run("req", "-x509", "-new", "-key", name + ".key", "-sha256", "-days", "30", "-subj", f"/CN={cn}",
             "-out", name + ".crt", cwd=self.dir)

    def _sign(self, key, cn, ext, out, days):
        with open(os.path.join(self.dir, out + ".ext"), "w") as f:
            f.write(ext)
        _run("req", "-new", "-key", key, "-subj", f"/CN={cn}", "-out", out + ".csr", cwd=self.dir)
        _run("x509", "-req", "-in", out + ".csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
             "-sha256", "-days", str(days), "-extfile", out + ".ext", "-out", out, cwd=self.dir)

    def _make(self):
        self._ca("ca", "hammer test CA")
        self._ca("other-ca", "another CA")
        self._key("server.key")
        # clientAuth too: a replica and a sentinel present it when they connect to another node over TLS.
        server_ext = "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n"
        self._sign("server.key", "localhost", server_ext, "server.crt", 30)
        self._sign("server.key", "localhost", server_ext, "expired.crt", -1)   # ended yesterday
        self._key("client.key")
        self._sign("client.key", "hammer client", "extendedKeyUsage=clientAuth\n", "client.crt", 30)
        os.makedirs(self.ca_dir, exist_ok=True)
        shutil.copy(self.ca, os.path.join(self.ca_dir, "ca.pem"))
        _run("rehash", self.ca_dir, cwd=self.dir)
