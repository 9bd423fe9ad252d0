"""Lab node supervisor: plays the kubelet's static-pod role for kube-apiserver only.

One supervisor runs per lab host, as the first process of that host's network, mount and UTS
namespaces (it is the host's "init"). It

* gives the host a copy-on-write view of machine directories (``--overlay``, e.g. ``/var``) and
  bind-mounts the host's private directories (``--bind SRC:DST``) over the machine's paths, so
  each host has its own ``/etc/kubernetes``, ``/var/log/kubernetes``, ``/tmp`` and ``/var``;
* keeps the host's sshd running (``--sshd-config``);
* watches the static-pod manifests directory the way the kubelet reads it
  (pkg/kubelet/config/file.go): files matching the glob ``[^.]*`` (dot-files ignored), every other
  regular file parsed whatever its extension, in sorted name order; an invalid file is logged and
  skipped; files over 10 MiB are skipped; when two files declare the same pod (namespace/name) the
  one sorting last wins (the full re-list rule; the inotify ordering between re-lists is not
  modelled, so the lab is deterministic);
* runs the ``kube-system/kube-apiserver`` pod's container as the container runtime would: a
  private mount namespace with a fresh root (tmpfs) holding only the binary, /proc, /dev, /sys, a
  minimal /etc and each hostPath volume bind-mounted at its mountPath. A path the manifest does
  not mount is therefore really absent for the apiserver, as in a container;
* restarts the apiserver when the pod changes. The pod identity is a hash of the parsed pod plus
  the file it came from (the kubelet's UID is a hash of content, node and file path), so a
  comment-only edit restarts nothing and a different winning file restarts it. Stop = SIGTERM,
  wait ``terminationGracePeriodSeconds`` (default 30), SIGKILL;
* backs off on crash loops like the kubelet: 10 s, doubling, capped at 300 s
  (``--backoff-initial``/``--backoff-cap``); the count resets when the pod changes or after the
  container ran for 10 minutes;
* appends the apiserver's stdout/stderr to one log per host, with a ``### kalab`` marker line
  before each start and after each exit, and writes its state as JSON (``--status``);
* with ``--pod-log-dir``, also writes that output where the kubelet keeps container logs:
  ``<dir>/kube-system_kube-apiserver-<node>_<pod uid>/kube-apiserver/<restart>.log`` in CRI format.

Only the standard library and PyYAML are used: the lab runs this with Debian's python3, as
``python3 DIR`` on a copy of this directory (``__main__.py`` is the entry point). One idea a module:

* ``pods``: reading the manifests directory as the kubelet does, and the apiserver pod as a
  container spec (pure; unit-tested in lab/tests/test_supervisor_pure.py);
* ``host``: the host mode, the supervisor's loop (namespaces, sshd, the apiserver's lifecycle,
  back-off, status);
* ``podlog``: the apiserver's output copied into the kubelet's pod-log layout;
* ``container``: the "runtime" half, internal mode ``DIR container SPEC.json``: started by the
  supervisor under ``unshare -m --propagation private``, it builds the root, then chroots and
  execs the apiserver (same pid).
"""

