using GoblinAspire.ChatFallback;

return await ChatFallbackApp.Build(args).RunServiceAsync();
