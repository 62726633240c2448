using GoblinAspire.Gateway;

return await GatewayApp.Build(args).RunServiceAsync();
