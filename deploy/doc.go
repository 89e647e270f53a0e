// Package deploy holds no code: its tests check the files an operator runs the service with
// (the Dockerfile, deploy/docker-compose.yml, the Prometheus alert rules in deploy/prometheus)
// against the service they describe, so that a renamed metric, variable or command breaks a test
// instead of an alert or a deployment.
package deploy
