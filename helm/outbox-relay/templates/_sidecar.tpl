{{/*
The relay as a sidecar in a host application's pod.

A host chart lists this chart as a dependency (with `mode: sidecar` in its values
under the `outbox-relay` key) and, in its pod template, passes this chart's own
context, `(index .Subcharts "outbox-relay")`, so the relay's values, defaults and
appVersion apply:

  {{- $relay := index .Subcharts "outbox-relay" }}
  spec:
    terminationGracePeriodSeconds: {{ include "outbox-relay.terminationGracePeriodSeconds" $relay }}
    {{- with include "outbox-relay.sidecar.initContainers" $relay }}
    initContainers:
      {{- . | nindent 6 }}
    {{- end }}
    containers:
      - name: app
        ...
      {{- include "outbox-relay.sidecar.containers" $relay | nindent 6 }}
    volumes:
      {{- include "outbox-relay.sidecar.volumes" $relay | nindent 6 }}

With sidecar.native true (Kubernetes ≥ 1.29) the relay is an init container with
restartPolicy Always: it starts before the app, keeps running beside it, and is
stopped after the app on shutdown. With sidecar.native false it is a plain
container for older clusters. Exactly one of the two includes renders it, so a
host chart includes both and flips the value alone. See helm/examples/host-app.
*/}}

{{/* The sidecar container, as one list item, in the shape sidecar.native asks for. */}}
{{- define "outbox-relay.sidecar" -}}
{{- include "outbox-relay.container" (dict
      "ctx" .
      "name" .Values.sidecar.containerName
      "portName" .Values.sidecar.portName
      "native" .Values.sidecar.native
      "configMap" false
      "readiness" .Values.sidecar.readinessProbe) -}}
{{- end -}}

{{/* List items for the host pod's initContainers: the relay when it is a native sidecar, else nothing. */}}
{{- define "outbox-relay.sidecar.initContainers" -}}
{{- if .Values.sidecar.native -}}
{{- include "outbox-relay.sidecar" . -}}
{{- end -}}
{{- end -}}

{{/* List items for the host pod's containers: the relay when it is a plain container, else nothing. */}}
{{- define "outbox-relay.sidecar.containers" -}}
{{- if not .Values.sidecar.native -}}
{{- include "outbox-relay.sidecar" . -}}
{{- end -}}
{{- end -}}

{{/* List items for the host pod's volumes: the relay's writable /tmp and extraVolumes. */}}
{{- define "outbox-relay.sidecar.volumes" -}}
{{- include "outbox-relay.volumes" . -}}
{{- end -}}
