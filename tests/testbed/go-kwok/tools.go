//go:build tools

// Package tools pins KWOK (fake nodes and pod lifecycle) for the integration test bed.
// It lives in its own module because KWOK depends on newer k8s.io libraries than the
// control plane built from ../go.
package tools

import (
	_ "sigs.k8s.io/kwok/cmd/kwok"
)
