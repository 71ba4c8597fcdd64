// Package e2e holds the browser tests of the dashboard: they start the
// demo in-process, drive Debian's Chromium through chromedp and save a
// screenshot of every page under test-artifacts/.
//
//	go test ./controlplane/e2e/                 # skips without Chromium unless CI=true
//	go test ./controlplane/e2e/ -screenshots    # also rewrites docs/screenshots/*.png
package e2e
