// Package auth renders the access pages of the dashboard: the login form,
// the users and tokens admin page, and the audit log. Like package ui it
// imports nothing from the control plane: handlers fill the Props types
// declared here. Every page carries the CSRF token in its forms and in
// hx-headers, and every value from stored data is escaped by templ.
//
// The pages use the dashboard's /static/pilothouse.css plus their own
// small stylesheet served by Static at StaticPath.
package auth
