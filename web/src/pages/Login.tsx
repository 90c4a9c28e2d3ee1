import { useState } from "react";
import { post } from "../api";
import { Card, ErrorBox, input, primary } from "../components/ui";

export default function Login({ onDone }: { onDone: () => void }) {
  const [token, setToken] = useState("");
  const [error, setError] = useState<unknown>(null);
  const submit = async (e: React.FormEvent) => {
    e.preventDefault();
    try {
      await post("/session", { token });
      onDone();
    } catch (err) {
      setError(err);
    }
  };
  return (
    <div className="mx-auto max-w-md">
      <Card title="Sign in">
        <form onSubmit={submit} className="space-y-3">
          <p className="text-sm text-slate-600">
            This server requires a token. Create one on the server with <code>osimager serve token create NAME</code>.
          </p>
          <input data-testid="token" type="password" className={input} value={token} onChange={(e) => setToken(e.target.value)} placeholder="osi_…" />
          <ErrorBox error={error} />
          <button data-testid="login" className={primary} type="submit">
            Sign in
          </button>
        </form>
      </Card>
    </div>
  );
}
