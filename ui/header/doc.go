// Package header renders the bar at the top of every signed-in page, so
// that the dashboard (package ui) and the access pages (package ui/auth)
// show the same navigation, search box and account links.
package header
