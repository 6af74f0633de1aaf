//go:build tools

// Package tools pins the Kubeflow Trainer v2 controller manager (TrainJob) for the integration test bed.
// It lives in its own module because each job-kind controller wants its own k8s.io and
// controller-runtime versions; one module would move them all to the newest.
package tools

import (
	_ "github.com/kubeflow/trainer/v2/cmd/trainer-controller-manager"
)
