"""Prints, as shell assignments, how to run the DaemonSet's init container with podman: its command and its
hostPath mounts mapped under a temp dir standing in for the node. Used by scripts/k8s-test.sh."""

import shlex
import sys

import yaml  # PyYAML: a dependency of kubernetes-validate, which scripts/deps.sh installs

manifest, node = sys.argv[1], sys.argv[2]
for doc in yaml.safe_load_all(open(manifest)):
    if doc and doc.get("kind") == "DaemonSet":
        init = doc["spec"]["template"]["spec"]["initContainers"][0]
        paths = [m["mountPath"] for m in init["volumeMounts"]]
        mounts = " ".join(f"-v {node}{p}:{p}" for p in paths)
        dirs = " ".join(node + p for p in paths)
        # A container's `command` replaces the image's entrypoint, as podman's --entrypoint does.
        command = init.get("command", [])
        print(f"MOUNTS={shlex.quote(mounts)}")
        print(f"DIRS={shlex.quote(dirs)}")
        print(f"ENTRY={shlex.quote(command[0] if command else '')}")
        print(f"CMD={shlex.quote(' '.join(command[1:] + init.get('args', [])))}")
        break
