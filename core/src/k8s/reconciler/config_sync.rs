//! The reconciler's side of the configuration: the cluster's objects into one configuration, BGP passwords from Secrets, and the state object that reports it.

use super::*;

impl Reconciler {
    pub(super) fn cluster_config(&self) -> ClusterConfig {
        self.config.cluster_config()
    }

    /// Validates the configuration objects; installs them through Raft if they are valid and
    /// differ from what is in force. Returns whether a new configuration was installed.
    /// Reads the TCP MD5 passwords BGPPeers name by `passwordSecret` (key `password`) into the
    /// configuration; every Secret that is missing or wrong is an error naming the peer.
    pub(super) async fn resolve_passwords(
        &self,
        config: &mut crate::config::Config,
    ) -> Result<(), Vec<String>> {
        use k8s_openapi::api::core::v1::Secret;
        let mut errors = Vec::new();
        for (name, peer) in config.peers.iter_mut() {
            let Some(r) = peer.password_secret.clone() else {
                continue;
            };
            let ns = r
                .namespace
                .as_ref()
                .map_or_else(|| self.cfg.namespace.clone(), |n| n.to_string());
            let what = format!(
                "BGPPeer/{name}: spec.passwordSecret: Secret {ns}/{}",
                r.name
            );
            let api: Api<Secret> = Api::namespaced(self.client.clone(), &ns);
            match api.get_opt(&r.name).await {
                Ok(Some(secret)) => {
                    let value = secret
                        .data
                        .as_ref()
                        .and_then(|d| d.get("password"))
                        .map(|b| String::from_utf8(b.0.clone()));
                    match value {
                        Some(Ok(text)) => match crate::config::model::Password::parse(&text) {
                            Ok(p) => peer.password = Some(p),
                            Err(why) => errors.push(format!("{what}: key \"password\" {why}")),
                        },
                        Some(Err(_)) => {
                            errors.push(format!("{what}: key \"password\" is not UTF-8"));
                        }
                        None => errors.push(format!("{what} has no key \"password\"")),
                    }
                }
                Ok(None) => errors.push(format!("{what} does not exist")),
                Err(e) => errors.push(format!("{what} cannot be read: {e}")),
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    pub(super) async fn sync_config(&self) -> bool {
        let docs = self.cluster_config().documents();
        let validated = match crate::config::validate(&docs) {
            Ok(mut config) => match self.resolve_passwords(&mut config).await {
                Ok(()) => Ok(config),
                Err(errors) => Err(errors),
            },
            Err(errors) => Err(errors.iter().map(|e| e.to_string()).collect()),
        };
        let (revision, current) = {
            let s = self.state.read().await;
            (s.config_revision, s.config.clone())
        };
        let in_force = current.is_some();
        let mut installed = false;
        let status = match validated {
            Err(errors) => {
                warn!(count = errors.len(), "the configuration objects are invalid; the last valid configuration stays in force");
                for e in &errors {
                    warn!("{e}");
                }
                ConfigurationStateStatus {
                    valid: false,
                    revision,
                    error_count: errors.len() as u64,
                    errors,
                    last_checked: Some(crate::k8s::now_rfc3339()),
                }
            }
            Ok(config) if current.as_ref() == Some(&config) => ConfigurationStateStatus {
                valid: true,
                revision,
                error_count: 0,
                errors: Vec::new(),
                last_checked: Some(crate::k8s::now_rfc3339()),
            },
            Ok(config) => match self.proposer.set_config(config).await {
                Ok(Ok((revision, recheck))) => {
                    info!(revision, ?recheck, "configuration installed");
                    installed = true;
                    ConfigurationStateStatus {
                        valid: true,
                        revision,
                        error_count: 0,
                        errors: Vec::new(),
                        last_checked: Some(crate::k8s::now_rfc3339()),
                    }
                }
                Ok(Err(why)) => ConfigurationStateStatus {
                    valid: false,
                    revision,
                    error_count: 1,
                    errors: vec![why],
                    last_checked: Some(crate::k8s::now_rfc3339()),
                },
                Err(e) => {
                    warn!(error = %e, "configuration not installed; will retry");
                    return false;
                }
            },
        };
        self.metrics.k8s.config_valid.set(i64::from(status.valid));
        // Stale: the objects say one thing while an older configuration is what runs.
        self.metrics
            .k8s
            .config_stale
            .set(i64::from(!status.valid && in_force));
        self.metrics
            .k8s
            .config_revision
            .set(i64::try_from(status.revision).unwrap_or(i64::MAX));
        self.write_state(status).await;
        installed
    }

    pub(super) async fn write_state(&self, status: ConfigurationStateStatus) {
        let comparable = ConfigurationStateStatus {
            last_checked: None,
            ..status.clone()
        };
        // Held across the write, so two writers never race to an older status.
        let mut written = self.written.lock().await;
        if written.state.as_ref().is_some_and(|l| *l == comparable) {
            return;
        }
        let api: Api<ConfigurationState> =
            Api::namespaced(self.client.clone(), &self.cfg.namespace);
        let pp = PatchParams::apply(FIELD_MANAGER).force();
        let obj = ConfigurationState::new(STATE_NAME, ConfigurationStateSpec {});
        let mut body = serde_json::to_value(&obj).unwrap_or_default();
        if let Some(o) = body.as_object_mut() {
            o.remove("status");
        }
        if let Err(e) = self.count_write(api.patch(STATE_NAME, &pp, &Patch::Apply(&body)).await) {
            warn!(error = %e, "cannot write the ConfigurationState object");
            return;
        }
        let status_body = json!({
            "apiVersion": kinds::API_VERSION,
            "kind": "ConfigurationState",
            "status": status,
        });
        match self.count_write(
            api.patch_status(STATE_NAME, &pp, &Patch::Apply(&status_body))
                .await,
        ) {
            Ok(_) => {
                written.state = Some(comparable);
            }
            Err(e) => warn!(error = %e, "cannot write the ConfigurationState status"),
        }
    }
}
