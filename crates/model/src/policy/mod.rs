//! Network policies (Calico v3 and Kubernetes shapes).
