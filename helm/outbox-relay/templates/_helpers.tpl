{{/*
Helpers of the outbox-relay chart. Every name starts with "outbox-relay." so that a
host chart depending on this one can call them without clashes.
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "outbox-relay.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The full name of the release's resources: fullnameOverride, else <release>-<name>. */}}
{{- define "outbox-relay.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* chart-name-version, for the helm.sh/chart label. */}}
{{- define "outbox-relay.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels of every resource. */}}
{{- define "outbox-relay.labels" -}}
helm.sh/chart: {{ include "outbox-relay.chart" . }}
{{ include "outbox-relay.selectorLabels" . }}
app.kubernetes.io/version: {{ (include "outbox-relay.imageTag" .) | trunc 63 | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: outbox-relay
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Labels that select the relay's pods; never change them on an existing release. */}}
{{- define "outbox-relay.selectorLabels" -}}
app.kubernetes.io/name: {{ include "outbox-relay.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The ServiceAccount the relay pods run as. */}}
{{- define "outbox-relay.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "outbox-relay.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The image tag: image.tag, else the chart's appVersion. */}}
{{- define "outbox-relay.imageTag" -}}
{{- default .Chart.AppVersion .Values.image.tag -}}
{{- end -}}

{{/* repository:tag, or repository@digest when a digest is set. */}}
{{- define "outbox-relay.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (include "outbox-relay.imageTag" .) -}}
{{- end -}}
{{- end -}}

{{/* Name of the existing Secret that holds the database URL. */}}
{{- define "outbox-relay.databaseSecretName" -}}
{{- default (printf "%s-database" (include "outbox-relay.fullname" .)) .Values.database.existingSecret -}}
{{- end -}}

{{/*
A duration as the relay writes it (250ms, 5s, 5m, 2h, 7d; a plain number is
seconds) in seconds, possibly fractional. Fails on anything else.
*/}}
{{- define "outbox-relay.durationSeconds" -}}
{{- $text := toString . | trim -}}
{{- $number := regexFind "^[0-9]+(\\.[0-9]+)?" $text -}}
{{- $unit := trimPrefix $number $text -}}
{{- $factors := dict "ms" 0.001 "s" 1.0 "m" 60.0 "h" 3600.0 "d" 86400.0 "" 1.0 -}}
{{- if or (not $number) (not (hasKey $factors $unit)) -}}
{{- fail (printf "%q is not a duration: write e.g. 250ms, 5s, 5m, 2h or 7d" $text) -}}
{{- end -}}
{{- mulf (float64 $number) (get $factors $unit) -}}
{{- end -}}

{{/*
terminationGracePeriodSeconds of a pod running the relay: the drain period
(config.shutdownGrace, rounded up) plus terminationGraceMarginSeconds, so the
relay can give unfinished work back and exit 0 before it is killed. A host
chart uses it for its own pod when it adds the sidecar.
*/}}
{{- define "outbox-relay.terminationGracePeriodSeconds" -}}
{{- $grace := include "outbox-relay.durationSeconds" .Values.config.shutdownGrace | float64 | ceil | int -}}
{{- add $grace (int .Values.terminationGraceMarginSeconds) -}}
{{- end -}}

{{/* The admin listen address; always matches the container port. */}}
{{- define "outbox-relay.adminListen" -}}
{{- printf "0.0.0.0:%d" (int .Values.admin.port) -}}
{{- end -}}

{{/* Non-secret OUTBOX_* settings, as a YAML map of strings (ConfigMap data / sidecar env). */}}
{{- define "outbox-relay.configData" -}}
OUTBOX_ADMIN_LISTEN: {{ include "outbox-relay.adminListen" . | quote }}
OUTBOX_RETRY_SCHEDULE: {{ .Values.config.retrySchedule | quote }}
OUTBOX_TIMEOUT: {{ .Values.config.timeout | quote }}
OUTBOX_POLL_INTERVAL: {{ .Values.config.pollInterval | quote }}
OUTBOX_LEASE: {{ .Values.config.lease | quote }}
OUTBOX_MAX_IN_FLIGHT: {{ .Values.config.maxInFlight | int | quote }}
OUTBOX_SHUTDOWN_GRACE: {{ .Values.config.shutdownGrace | quote }}
OUTBOX_BREAKER_FAILURES: {{ .Values.config.breakerFailures | int | quote }}
OUTBOX_BREAKER_COOLDOWN: {{ .Values.config.breakerCooldown | quote }}
OUTBOX_BREAKER_MAX_COOLDOWN: {{ .Values.config.breakerMaxCooldown | quote }}
OUTBOX_DISABLE_AFTER: {{ .Values.config.disableAfter | quote }}
OUTBOX_RETENTION: {{ .Values.config.retention | quote }}
OUTBOX_ALLOW_PRIVATE_NETWORKS: {{ .Values.config.allowPrivateNetworks | toString | quote }}
OUTBOX_LOG_FORMAT: {{ .Values.config.logFormat | quote }}
OUTBOX_LOG_LEVEL: {{ .Values.config.logLevel | quote }}
{{- with .Values.config.caBundle }}
OUTBOX_CA_BUNDLE: {{ . | quote }}
{{- end }}
{{- if .Values.api.enabled }}
OUTBOX_API_LISTEN: {{ printf "0.0.0.0:%d" (int .Values.api.port) | quote }}
{{- end }}
{{- end -}}

{{/* The env entry of the database URL: always a secretKeyRef, never a value. */}}
{{- define "outbox-relay.databaseEnv" -}}
- name: OUTBOX_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "outbox-relay.databaseSecretName" . }}
      key: {{ .Values.database.existingSecretKey }}
{{- end -}}

{{/*
The env entry of the migration Job's database URL: migrations.database's Secret
(the schema's owner) when set, else the relay's. Always a secretKeyRef.
*/}}
{{- define "outbox-relay.migrationDatabaseEnv" -}}
{{- $migration := .Values.migrations.database -}}
- name: OUTBOX_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ $migration.existingSecret | default (include "outbox-relay.databaseSecretName" .) }}
      key: {{ $migration.existingSecretKey | default .Values.database.existingSecretKey }}
{{- end -}}

{{/* Arguments of the relay container: `run`, with --migrate in migrations.mode run. */}}
{{- define "outbox-relay.runArgs" -}}
{{- /* Checked here: every relay container renders its arguments. */ -}}
{{- if and .Values.migrations.database.existingSecret (ne .Values.migrations.mode "job") -}}
{{- fail "migrations.database.existingSecret needs migrations.mode job: in mode run the relay migrates with database.existingSecret" -}}
{{- end -}}
- run
{{- if eq .Values.migrations.mode "run" }}
- --migrate
{{- end }}
{{- end -}}

{{/*
The relay container. Called with a dict:
  ctx        the chart context (.Values, .Chart, .Release)
  name       container name
  portName   name of the admin port
  native     true: add restartPolicy Always (a native sidecar in initContainers)
  configMap  true: take settings from the release's ConfigMap; false: inline env
  readiness  true: add the /readyz readiness probe
*/}}
{{- define "outbox-relay.container" -}}
{{- $ctx := .ctx -}}
{{- $values := $ctx.Values -}}
- name: {{ .name }}
  image: {{ include "outbox-relay.image" $ctx | quote }}
  imagePullPolicy: {{ $values.image.pullPolicy }}
  {{- if .native }}
  restartPolicy: Always
  {{- end }}
  args:
    {{- include "outbox-relay.runArgs" $ctx | nindent 4 }}
  ports:
    - name: {{ .portName }}
      containerPort: {{ $values.admin.port }}
      protocol: TCP
    {{- if $values.api.enabled }}
    - name: api
      containerPort: {{ $values.api.port }}
      protocol: TCP
    {{- end }}
  {{- if .configMap }}
  envFrom:
    - configMapRef:
        name: {{ include "outbox-relay.fullname" $ctx }}
    {{- with $values.extraEnvFrom }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- else }}
  {{- with $values.extraEnvFrom }}
  envFrom:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- end }}
  env:
    {{- include "outbox-relay.databaseEnv" $ctx | nindent 4 }}
    {{- if not .configMap }}
    {{- range $key, $value := include "outbox-relay.configData" $ctx | fromYaml }}
    - name: {{ $key }}
      value: {{ $value | quote }}
    {{- end }}
    {{- end }}
    {{- with $values.extraEnv }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  startupProbe:
    httpGet:
      path: /healthz
      port: {{ .portName }}
    periodSeconds: {{ $values.probes.startup.periodSeconds }}
    failureThreshold: {{ $values.probes.startup.failureThreshold }}
  livenessProbe:
    httpGet:
      path: /healthz
      port: {{ .portName }}
    periodSeconds: {{ $values.probes.liveness.periodSeconds }}
    timeoutSeconds: {{ $values.probes.liveness.timeoutSeconds }}
    failureThreshold: {{ $values.probes.liveness.failureThreshold }}
  {{- if .readiness }}
  readinessProbe:
    httpGet:
      path: /readyz
      port: {{ .portName }}
    periodSeconds: {{ $values.probes.readiness.periodSeconds }}
    timeoutSeconds: {{ $values.probes.readiness.timeoutSeconds }}
    failureThreshold: {{ $values.probes.readiness.failureThreshold }}
  {{- end }}
  resources:
    {{- toYaml $values.resources | nindent 4 }}
  securityContext:
    {{- toYaml $values.securityContext | nindent 4 }}
  volumeMounts:
    - name: {{ include "outbox-relay.tmpVolumeName" $ctx }}
      mountPath: /tmp
    {{- with $values.extraVolumeMounts }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end -}}

{{/* Name of the writable /tmp volume (the root filesystem is read-only). */}}
{{- define "outbox-relay.tmpVolumeName" -}}
{{- if eq .Values.mode "sidecar" -}}outbox-relay-tmp{{- else -}}tmp{{- end -}}
{{- end -}}

{{/* Volumes the relay container needs, as list items. */}}
{{- define "outbox-relay.volumes" -}}
- name: {{ include "outbox-relay.tmpVolumeName" . }}
  emptyDir:
    sizeLimit: 64Mi
{{- with .Values.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end -}}
