//go:build tools

// Package tools pins the Kubeflow Training Operator v1 (PyTorchJob) for the integration test bed.
// It lives in its own module because each job-kind controller wants its own k8s.io and
// controller-runtime versions; one module would move them all to the newest.
package tools

import (
	_ "github.com/kubeflow/training-operator/cmd/training-operator.v1"
)
