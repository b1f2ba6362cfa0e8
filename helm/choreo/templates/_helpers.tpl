{{/* The saga services: each owns a database and consumes from Kafka. */}}
{{- define "choreo.sagaServices" -}}
order inventory payment shipping
{{- end -}}

{{/* Every component that runs as a Deployment: the edge and the saga services. */}}
{{- define "choreo.components" -}}
edge {{ include "choreo.sagaServices" . }}
{{- end -}}

{{/* Each component's HTTP port, the same as locally (README, Configuration). */}}
{{- define "choreo.port" -}}
{{- get (dict "edge" 8080 "order" 8082 "inventory" 8083 "payment" 8084 "shipping" 8085) . -}}
{{- end -}}

{{/*
40 characters at most: a Job's name becomes a label value (63 at most) and
the longest suffix is "-topics-and-schemas".
*/}}
{{- define "choreo.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "choreo.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: choreo
{{- end -}}

{{/* Selector labels of one component: (dict "root" $ "component" "order"). */}}
{{- define "choreo.selectorLabels" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "choreo.image" -}}
{{- printf "%s/%s:%s" .root.Values.image.repository .component (.root.Values.image.tag | default .root.Chart.AppVersion) -}}
{{- end -}}

{{- define "choreo.secretName" -}}
{{- .Values.secrets.existingSecret | default (printf "%s-secrets" (include "choreo.fullname" .)) -}}
{{- end -}}

{{/* The hook jobs' copy of the Secret (without the edge's token secret). */}}
{{- define "choreo.jobSecretName" -}}
{{- .Values.secrets.existingSecret | default (printf "%s-job-secrets" (include "choreo.fullname" .)) -}}
{{- end -}}

{{- define "choreo.configName" -}}
{{- printf "%s-%s" (include "choreo.fullname" .root) .component -}}
{{- end -}}

{{- define "choreo.jobConfigName" -}}
{{- printf "%s-%s-job" (include "choreo.fullname" .root) .component -}}
{{- end -}}

{{/*
An internal key (README, Security model): the value, else the one a previous
release made, else a new one, made once per render so that the Secret and
the jobs' copy agree: (dict "root" $ "key" "internal-admin-secret" "value" "adminSecret").
*/}}
{{- define "choreo.internalKey" -}}
{{- $auth := .root.Values.internalAuth -}}
{{- $made := $auth.generated | default dict -}}
{{- if not (hasKey $made .key) -}}
{{- $value := index $auth .value -}}
{{- if not $value -}}
{{- $existing := lookup "v1" "Secret" .root.Release.Namespace (include "choreo.secretName" .root) -}}
{{- if and $existing (index ($existing.data | default dict) .key) -}}
{{- $value = index $existing.data .key | b64dec -}}
{{- else -}}
{{- $value = randAlphaNum 64 -}}
{{- end -}}
{{- end -}}
{{- $_ := set $made .key $value -}}
{{- $_ := set $auth "generated" $made -}}
{{- end -}}
{{- index $made .key -}}
{{- end -}}

{{/* The HS256 secret: the value, else the one a previous release made, else a new one. */}}
{{- define "choreo.hs256Secret" -}}
{{- if .Values.auth.hs256Secret -}}
{{- .Values.auth.hs256Secret -}}
{{- else -}}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "choreo.secretName" .) -}}
{{- if and $existing (index ($existing.data | default dict) "hs256-secret") -}}
{{- index $existing.data "hs256-secret" | b64dec -}}
{{- else -}}
{{- randAlphaNum 64 -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
A component's settings, as CHOREO_* variables (its ConfigMap):
(dict "root" $ "component" "order").
*/}}
{{- define "choreo.settings" -}}
{{- $v := .root.Values -}}
{{- $fullname := include "choreo.fullname" .root -}}
{{- if ne .component "choreo" }}
CHOREO_HTTP_ADDR: {{ printf "0.0.0.0:%s" (include "choreo.port" .component) | quote }}
{{- end }}
CHOREO_LOG_FORMAT: {{ $v.telemetry.logFormat | quote }}
CHOREO_SHUTDOWN_GRACE_SECONDS: {{ $v.shutdownGraceSeconds | quote }}
{{- with $v.telemetry.otlpEndpoint }}
OTEL_EXPORTER_OTLP_ENDPOINT: {{ . | quote }}
{{- end }}
{{- if eq .component "edge" }}
{{- range $service := splitList " " (include "choreo.sagaServices" .root) }}
CHOREO_{{ upper $service }}_URL: {{ printf "http://%s-%s:%s" $fullname $service (include "choreo.port" $service) | quote }}
{{- end }}
{{- with $v.auth.rs256PublicKey }}
CHOREO_AUTH__RS256_PUBLIC_KEY: {{ . | quote }}
{{- end }}
{{- with $v.auth.issuer }}
CHOREO_AUTH__ISSUER: {{ . | quote }}
{{- end }}
{{- with $v.auth.audience }}
CHOREO_AUTH__AUDIENCE: {{ . | quote }}
{{- end }}
{{- if $v.edge.ingress.enabled }}
{{- /* Behind the ingress every client arrives from the ingress
controller's pods: the per-address limit reads X-Forwarded-For from them. */}}
CHOREO_RATE_LIMIT__TRUSTED_PROXIES: {{ required "edge.ingress.trustedProxies (the ingress controller pods' CIDR ranges) is required with edge.ingress.enabled" $v.edge.ingress.trustedProxies | quote }}
{{- end }}
{{- else }}
{{- include "choreo.kafkaSettings" .root }}
CHOREO_REGISTRY_URL: {{ $v.schemaRegistry.url | quote }}
{{- if ne .component "choreo" }}
CHOREO_DATABASE_URL: {{ printf "postgres://%s@%s:%v/%s?sslmode=%s%s" (index $v.postgresql.roles .component | urlquery) $v.postgresql.host $v.postgresql.port (index $v.postgresql.databases .component) $v.postgresql.sslMode (ternary "&sslrootcert=/etc/choreo/postgres-ca/ca.crt" "" (ne $v.postgresql.caSecret "")) | quote }}
{{- end }}
{{- if and (eq .component "payment") $v.payment.providerUrl }}
CHOREO_PROVIDER__URL: {{ $v.payment.providerUrl | quote }}
{{- end }}
{{- if and (eq .component "payment") (not (hasKey $v.payment.env "CHOREO_DATABASE_MAX_CONNECTIONS")) }}
{{- /* Payment holds a connection through each provider call, one per
partition it consumes (two input topics): a replica holding them all must
still have connections for its API and relay; it refuses a smaller pool. */}}
CHOREO_DATABASE_MAX_CONNECTIONS: {{ add (mul 2 $v.kafka.partitions) 4 | quote }}
{{- end }}
{{- end }}
{{- if ne .component "choreo" }}
{{- range $key, $value := (index $v .component).env }}
{{ $key }}: {{ $value | toString | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{/* The broker's settings, shared by the saga services and the setup job. */}}
{{- define "choreo.kafkaSettings" -}}
{{- $k := .Values.kafka }}
CHOREO_KAFKA__BOOTSTRAP_SERVERS: {{ $k.bootstrapServers | quote }}
CHOREO_KAFKA__TOPIC_PREFIX: {{ $k.topicPrefix | quote }}
CHOREO_KAFKA__PARTITIONS: {{ $k.partitions | quote }}
CHOREO_KAFKA__REPLICATION_FACTOR: {{ $k.replicationFactor | quote }}
CHOREO_KAFKA__MIN_INSYNC_REPLICAS: {{ $k.minInsyncReplicas | quote }}
{{- if or $k.sasl.enabled $k.tls.enabled }}
CHOREO_KAFKA__PROPERTIES__SECURITY_PROTOCOL: {{ ternary (ternary "SASL_SSL" "SASL_PLAINTEXT" $k.tls.enabled) "SSL" $k.sasl.enabled | quote }}
{{- end }}
{{- if $k.sasl.enabled }}
CHOREO_KAFKA__PROPERTIES__SASL_MECHANISM: {{ $k.sasl.mechanism | quote }}
CHOREO_KAFKA__PROPERTIES__SASL_USERNAME: {{ $k.sasl.username | quote }}
{{- end }}
{{- if and $k.tls.enabled $k.tls.caSecret }}
CHOREO_KAFKA__PROPERTIES__SSL_CA_LOCATION: "/etc/choreo/kafka-ca/ca.crt"
{{- end }}
{{- range $name, $value := $k.properties }}
CHOREO_KAFKA__PROPERTIES__{{ $name | upper | replace "." "_" }}: {{ $value | toString | quote }}
{{- end }}
{{- end -}}

{{/*
The secrets a component reads, as env entries from the Secret `secret`:
(dict "root" $ "component" "order" "secret" "shop-choreo-secrets").
*/}}
{{- define "choreo.secretEnv" -}}
{{- $v := .root.Values -}}
{{- $secret := .secret -}}
{{- /* Every process signs with the service key but the setup job, an
operator's tool; all check the admin key but the edge, which the internet
reaches and so must not hold it. */}}
{{- if ne .component "choreo" }}
- name: CHOREO_INTERNAL_AUTH__SERVICE_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: internal-service-secret
{{- end }}
{{- if ne .component "edge" }}
- name: CHOREO_INTERNAL_AUTH__ADMIN_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: internal-admin-secret
{{- end }}
{{- if eq .component "edge" }}
{{- if not $v.auth.rs256PublicKey }}
- name: CHOREO_AUTH__HS256_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: hs256-secret
{{- end }}
{{- else }}
{{- if ne .component "choreo" }}
- name: PGPASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: postgresql-password-{{ .component }}
{{- end }}
{{- if $v.kafka.sasl.enabled }}
- name: CHOREO_KAFKA__PROPERTIES__SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: kafka-sasl-password
{{- end }}
{{- end }}
{{- end -}}

{{/*
The CAs a component's settings name (the broker's, the database's),
mounted where CHOREO_KAFKA__PROPERTIES__SSL_CA_LOCATION and sslrootcert
say: (dict "root" $ "kafka" true "postgres" true).
*/}}
{{- define "choreo.caVolumes" -}}
{{- $v := .root.Values -}}
{{- if and .kafka $v.kafka.tls.enabled $v.kafka.tls.caSecret }}
- name: kafka-ca
  secret:
    secretName: {{ $v.kafka.tls.caSecret }}
{{- end }}
{{- if and .postgres $v.postgresql.caSecret }}
- name: postgres-ca
  secret:
    secretName: {{ $v.postgresql.caSecret }}
{{- end }}
{{- end -}}

{{- define "choreo.caMounts" -}}
{{- $v := .root.Values -}}
{{- if and .kafka $v.kafka.tls.enabled $v.kafka.tls.caSecret }}
- name: kafka-ca
  mountPath: /etc/choreo/kafka-ca
  readOnly: true
{{- end }}
{{- if and .postgres $v.postgresql.caSecret }}
- name: postgres-ca
  mountPath: /etc/choreo/postgres-ca
  readOnly: true
{{- end }}
{{- end -}}

{{/*
What the hook jobs read is made before them, as hooks too: ordinary
resources do not exist yet when pre-install hooks run. They are copies, so
the Deployments' settings stay release resources (a rollback restores them,
a failed upgrade leaves them alone).
*/}}
{{- define "choreo.configHook" -}}
helm.sh/hook: pre-install,pre-upgrade
helm.sh/hook-weight: "-10"
helm.sh/hook-delete-policy: before-hook-creation
{{- end -}}

{{/* What both steps of the setup job share. */}}
{{- define "choreo.setupContainer" -}}
envFrom:
  - configMapRef:
      name: {{ include "choreo.jobConfigName" (dict "root" . "component" "choreo") }}
{{- with include "choreo.secretEnv" (dict "root" . "component" "choreo" "secret" (include "choreo.jobSecretName" .)) | trim }}
env:
  {{- . | trim | nindent 2 }}
{{- end }}
resources:
  {{- toYaml .Values.jobs.resources | nindent 2 }}
securityContext:
  {{- toYaml .Values.securityContext | nindent 2 }}
{{- with include "choreo.caMounts" (dict "root" . "kafka" true) | trim }}
volumeMounts:
  {{- . | trim | nindent 2 }}
{{- end }}
{{- end -}}

{{/* The passwords, in the Secret and in the jobs' copy of it. */}}
{{- define "choreo.secretData" -}}
{{- range $service := splitList " " (include "choreo.sagaServices" .) }}
postgresql-password-{{ $service }}: {{ index $.Values.postgresql.passwords $service | quote }}
{{- end }}
internal-service-secret: {{ include "choreo.internalKey" (dict "root" . "key" "internal-service-secret" "value" "serviceSecret") | quote }}
internal-admin-secret: {{ include "choreo.internalKey" (dict "root" . "key" "internal-admin-secret" "value" "adminSecret") | quote }}
{{- if .Values.kafka.sasl.enabled }}
kafka-sasl-password: {{ required "kafka.sasl.password (or secrets.existingSecret) is required with kafka.sasl.enabled" .Values.kafka.sasl.password | quote }}
{{- end }}
{{- end -}}

{{/*
Rolls the pods when a secret they read changes (the HS256 secret the chart
makes itself is kept across upgrades, so it does not count).
*/}}
{{- define "choreo.secretChecksum" -}}
{{- list .Values.secrets.existingSecret .Values.postgresql.passwords .Values.kafka.sasl.password .Values.auth.hs256Secret .Values.internalAuth.serviceSecret .Values.internalAuth.adminSecret | toJson | sha256sum -}}
{{- end -}}
