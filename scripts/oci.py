#!/usr/bin/env python3
"""Writes ringress's image from staged root filesystems (scripts/image.sh stages them).

One layer per platform: a tar of the root with every entry owned by 0:0, sorted, stamped with
SOURCE_DATE_EPOCH and gzipped without a name or time, so the same inputs give the same digest.
File capabilities go in as the PAX record SCHILY.xattr.security.capability, which containerd,
CRI-O and podman apply when they unpack a layer.

Outputs an oci-archive (an OCI image layout in a tar; several platforms make an image index)
and a docker-archive per platform (manifest.json and repositories, for docker load and
`ctr images import`).
"""

import argparse
import gzip
import hashlib
import io
import json
import os
import stat
import tarfile
import time

SOURCE = "https://github.com/ringress/ringress"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def digest(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer_tar(root, epoch):
    """The root as an uncompressed tar, byte for byte the same for the same tree."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        paths = []
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in sorted(dirnames + filenames):
                paths.append(os.path.join(dirpath, name))
        for path in sorted(paths, key=lambda p: os.path.relpath(p, root)):
            rel = os.path.relpath(path, root)
            st = os.lstat(path)
            info = tarfile.TarInfo(rel)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mtime = epoch
            info.mode = stat.S_IMODE(st.st_mode)
            data = None
            if stat.S_ISDIR(st.st_mode):
                info.type = tarfile.DIRTYPE
                info.mode = 0o1777 if rel == "tmp" else 0o755
            elif stat.S_ISLNK(st.st_mode):
                info.type = tarfile.SYMTYPE
                info.linkname = os.readlink(path)
            else:
                info.size = st.st_size
                with open(path, "rb") as f:
                    data = f.read()
                try:
                    cap = os.getxattr(path, "security.capability", follow_symlinks=False)
                    info.pax_headers = {
                        "SCHILY.xattr.security.capability": cap.decode("utf-8", "surrogateescape")
                    }
                except OSError:
                    pass
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def gz(data):
    out = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=9) as g:
        g.write(data)
    return out.getvalue()


def archive(files, epoch):
    """A tar of {name: bytes}, sorted and stamped like the layer."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs = set()
        for name in sorted(files):
            parts = name.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                d = "/".join(parts[:i])
                if d not in dirs:
                    dirs.add(d)
                    info = tarfile.TarInfo(d)
                    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, epoch
                    tar.addfile(info)
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(files[name]), 0o644, epoch
            tar.addfile(info, io.BytesIO(files[name]))
    return buf.getvalue()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--image", required=True)
    ap.add_argument("--tag", required=True)
    ap.add_argument("--version", required=True)
    ap.add_argument("--revision", required=True)
    ap.add_argument("platforms", nargs="+", help="arch=rootfs")
    a = ap.parse_args()
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH", "0"))
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
    ref = f"{a.image}:{a.tag}"
    labels = {
        "org.opencontainers.image.title": "ringress",
        "org.opencontainers.image.description": "Kubernetes Ingress controller and edge proxy",
        "org.opencontainers.image.source": SOURCE,
        "org.opencontainers.image.revision": a.revision,
        "org.opencontainers.image.version": a.version,
        "org.opencontainers.image.licenses": "Apache-2.0",
        "org.opencontainers.image.created": created,
    }
    blobs = {}
    manifests = []
    for spec in a.platforms:
        arch, root = spec.split("=", 1)
        raw = layer_tar(root, epoch)
        layer = gz(raw)
        config = canonical({
            "architecture": arch,
            "os": "linux",
            "created": created,
            "author": "ringress",
            "config": {
                "User": "65532:65532",
                "Entrypoint": ["/usr/bin/ringress"],
                "Cmd": ["run"],
                "Env": ["PATH=/usr/bin", "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"],
                "WorkingDir": "/",
                "ExposedPorts": {"80/tcp": {}, "443/tcp": {}},
                "Labels": labels,
            },
            "rootfs": {"type": "layers", "diff_ids": [digest(raw)]},
            "history": [{"created": created, "created_by": "scripts/image.sh"}],
        })
        manifest = canonical({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": digest(config), "size": len(config)},
            "layers": [{"mediaType": OCI_LAYER, "digest": digest(layer), "size": len(layer)}],
            "annotations": labels,
        })
        for b in (layer, config, manifest):
            blobs[digest(b)] = b
        manifests.append({
            "mediaType": OCI_MANIFEST,
            "digest": digest(manifest),
            "size": len(manifest),
            "platform": {"architecture": arch, "os": "linux"},
        })
        # docker-archive: the layer uncompressed, as `docker save` writes it.
        cfg_name = digest(config).split(":")[1] + ".json"
        layer_name = digest(raw).split(":")[1] + "/layer.tar"
        docker = {
            cfg_name: config,
            layer_name: raw,
            # Fully qualified, as the kubelet names `ringress:<tag>`: docker shows it short,
            # podman and containerd keep it as is (a short name would become localhost/...).
            "manifest.json": canonical([{"Config": cfg_name, "RepoTags": [f"docker.io/library/{ref}"], "Layers": [layer_name]}]),
            "repositories": canonical({a.image: {a.tag: digest(raw).split(":")[1]}}),
        }
        path = os.path.join(a.out, f"{a.image}-{a.tag}-{arch}.docker.tar")
        with open(path, "wb") as f:
            f.write(archive(docker, epoch))
        print(f"{path}\t{arch}\tmanifest {digest(manifest)}\tlayer {len(layer)} bytes gzipped, {len(raw)} unpacked")

    names = {"org.opencontainers.image.ref.name": a.tag, "io.containerd.image.name": f"docker.io/library/{ref}"}
    if len(manifests) == 1:
        top = dict(manifests[0], annotations=names)
    else:
        index = canonical({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests})
        blobs[digest(index)] = index
        top = {"mediaType": OCI_INDEX, "digest": digest(index), "size": len(index), "annotations": names}
    layout = {"oci-layout": canonical({"imageLayoutVersion": "1.0.0"}),
              "index.json": canonical({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [top]})}
    for d, b in blobs.items():
        layout["blobs/sha256/" + d.split(":")[1]] = b
    path = os.path.join(a.out, f"{a.image}-{a.tag}.oci.tar")
    with open(path, "wb") as f:
        f.write(archive(layout, epoch))
    print(f"{path}\t{top['mediaType'].rsplit('.', 2)[-2]}\t{top['digest']}")


if __name__ == "__main__":
    main()
