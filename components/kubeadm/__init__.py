"""kubeadm persistence: the audit flags and mounts recorded in kube-system/kubeadm-config."""
