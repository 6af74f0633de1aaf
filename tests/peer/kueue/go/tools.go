//go:build tools

// Package tools pins the Kueue manager (sigs.k8s.io/kueue/cmd/kueue) that
// tests/peer/kueue/build.sh builds for the peer comparison.
package tools

import _ "sigs.k8s.io/kueue/cmd/kueue"
