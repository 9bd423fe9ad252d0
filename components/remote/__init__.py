"""How the program reaches the cluster: SSH to masters and the dynamic resources over it (ssh.py), the
node program copied to each master (node_program.py), plain error text in the provider host
(plain_errors.py), and the Kubernetes API client (kubeapi.py)."""
