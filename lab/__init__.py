"""The kube-audit lab: a local multi-master cluster (netns hosts, sshd, a static-pod supervisor)."""
